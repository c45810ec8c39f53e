package script

import (
	"math"

	"github.com/dop251/goja"
	"github.com/shopspring/decimal"
)

// DefaultDivPlaces is the precision of decimal division when the script names none.
const DefaultDivPlaces = 16

// Decimal is the exact decimal scripts get from decimal(x): money arithmetic without
// floating point. Methods are exposed to JavaScript in lower camel case.
type Decimal struct {
	vm *goja.Runtime
	d  decimal.Decimal
}

func newDecimal(vm *goja.Runtime, v goja.Value) *Decimal {
	return &Decimal{vm: vm, d: toDecimal(vm, v)}
}

func toDecimal(vm *goja.Runtime, v goja.Value) decimal.Decimal {
	if v == nil || goja.IsUndefined(v) || goja.IsNull(v) {
		return decimal.Zero
	}
	switch x := v.Export().(type) {
	case *Decimal:
		return x.d
	case int64:
		return decimal.NewFromInt(x)
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			panic(vm.NewTypeError("decimal: not a finite number"))
		}
		return decimal.NewFromFloat(x)
	case string:
		d, err := decimal.NewFromString(x)
		if err != nil {
			panic(vm.NewTypeError("decimal: " + x + " is not a number"))
		}
		return d
	}
	panic(vm.NewTypeError("decimal: cannot convert " + v.String()))
}

func (x *Decimal) wrap(d decimal.Decimal) *Decimal { return &Decimal{vm: x.vm, d: d} }

// Add returns x + y.
func (x *Decimal) Add(y goja.Value) *Decimal { return x.wrap(x.d.Add(toDecimal(x.vm, y))) }

// Sub returns x - y.
func (x *Decimal) Sub(y goja.Value) *Decimal { return x.wrap(x.d.Sub(toDecimal(x.vm, y))) }

// Mul returns x × y.
func (x *Decimal) Mul(y goja.Value) *Decimal { return x.wrap(x.d.Mul(toDecimal(x.vm, y))) }

// Div returns x ÷ y rounded half away from zero to places (DefaultDivPlaces if omitted).
func (x *Decimal) Div(y goja.Value, places goja.Value) *Decimal {
	divisor := toDecimal(x.vm, y)
	if divisor.IsZero() {
		panic(x.vm.NewTypeError("decimal: division by zero"))
	}
	p := int32(DefaultDivPlaces)
	if places != nil && !goja.IsUndefined(places) {
		p = int32(places.ToInteger())
	}
	return x.wrap(x.d.DivRound(divisor, p))
}

// Round rounds half away from zero to places.
func (x *Decimal) Round(places int32) *Decimal { return x.wrap(x.d.Round(places)) }

// Neg returns -x.
func (x *Decimal) Neg() *Decimal { return x.wrap(x.d.Neg()) }

// Abs returns |x|.
func (x *Decimal) Abs() *Decimal { return x.wrap(x.d.Abs()) }

// Cmp returns -1, 0 or 1.
func (x *Decimal) Cmp(y goja.Value) int { return x.d.Cmp(toDecimal(x.vm, y)) }

// Eq reports x == y.
func (x *Decimal) Eq(y goja.Value) bool { return x.Cmp(y) == 0 }

// Gt reports x > y.
func (x *Decimal) Gt(y goja.Value) bool { return x.Cmp(y) > 0 }

// Gte reports x >= y.
func (x *Decimal) Gte(y goja.Value) bool { return x.Cmp(y) >= 0 }

// Lt reports x < y.
func (x *Decimal) Lt(y goja.Value) bool { return x.Cmp(y) < 0 }

// Lte reports x <= y.
func (x *Decimal) Lte(y goja.Value) bool { return x.Cmp(y) <= 0 }

// IsZero reports x == 0.
func (x *Decimal) IsZero() bool { return x.d.IsZero() }

// ToFixed renders x with exactly places decimals.
func (x *Decimal) ToFixed(places int32) string { return x.d.StringFixed(places) }

// ToString renders x exactly.
func (x *Decimal) ToString() string { return x.d.String() }

// ToJSON makes JSON.stringify write the exact string.
func (x *Decimal) ToJSON() string { return x.d.String() }
