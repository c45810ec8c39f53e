package workflows

import (
	"context"
	"encoding/json"

	"github.com/tessera/tessera/engine"
	"github.com/tessera/tessera/engine/query"
	"github.com/tessera/tessera/workflows/dsl"
)

// engineGetOptions reads a record as the API shows it.
var engineGetOptions = engine.GetOptions{}

// matchRecord evaluates a condition written in the record filter language on a
// record: fields by name, workflow variables and $old as parameters. Absent optional
// parameters count as nil rather than as typos.
func matchRecord(ctx context.Context, eng *engine.Engine, entity, cond string, rec json.RawMessage, params map[string]any) (bool, error) {
	expr, err := query.Parse(cond)
	if err != nil {
		return false, err
	}
	return eng.Match(ctx, entity, expr, rec, dsl.FillParams(expr, query.Params(params)))
}
