package engine

import (
	"encoding/json"
	"fmt"

	"github.com/shopspring/decimal"

	"github.com/tessera/tessera/engine/schema"
)

// addAmounts adds signed amounts to number fields of rec, exactly. rec is the record
// as read under the row lock, so an adjustment made this way is atomic: two writers
// adjusting one row (two orders reserving the same product) queue on the lock and both
// amounts count, where reading the value and writing back a sum would lose one.
func addAmounts(ent *schema.Entity, rec, amounts map[string]any) error {
	for name, v := range amounts {
		f := ent.Field(name)
		path := "/" + name
		switch f.Type {
		case schema.TypeInteger, schema.TypeDecimal, schema.TypeMoney, schema.TypePercent:
		default:
			return invalid(path, "not_a_number_field", fmt.Sprintf("%s is a %s field; only number fields can be adjusted", name, f.Type))
		}
		delta, err := decimal.NewFromString(fmt.Sprint(v))
		if err != nil {
			return invalid(path, "type", fmt.Sprintf("the amount to add to %s must be a number, not %v", name, v))
		}
		sum := delta
		if cur, ok := rec[name]; ok && cur != nil {
			base, err := decimal.NewFromString(fmt.Sprint(cur))
			if err != nil {
				return invalid(path, "type", fmt.Sprintf("the stored %s (%v) is not a number", name, cur))
			}
			sum = base.Add(delta)
		}
		if f.Type == schema.TypeInteger {
			if !sum.IsInteger() {
				return invalid(path, "type", fmt.Sprintf("%s is an integer field; %v is not a whole amount", name, v))
			}
			rec[name] = json.Number(sum.String())
			continue
		}
		// Keep the scale of the operands: 0.10 + 0.35 is 0.45 and 2.00 + 0.50 is 2.50.
		rec[name] = sum.StringFixed(max(0, -sum.Exponent()))
	}
	return nil
}
