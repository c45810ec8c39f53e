package workflows

import (
	"go.temporal.io/sdk/workflow"

	"github.com/tessera/tessera/workflows/dsl"
)

// RecordInput is the input of the record activities.
type RecordInput struct {
	Call
	Entity string         `json:"entity"`
	ID     string         `json:"id,omitempty"`
	Data   map[string]any `json:"data,omitempty"`
	Filter string         `json:"filter,omitempty"`
	Sort   string         `json:"sort,omitempty"`
	Limit  int            `json:"limit,omitempty"`
}

// RecordOutput is what the record activities return.
type RecordOutput struct {
	Record  map[string]any   `json:"record,omitempty"`
	Records []map[string]any `json:"records,omitempty"`
	Created bool             `json:"created,omitempty"`
	Total   int64            `json:"total,omitempty"`
}

// record runs create, update, get and query through the engine's one write path, as
// the run's actor.
func (r *run) record(ctx workflow.Context, s *dsl.Step, key string, sc dsl.Scope) (map[string]any, error) {
	in := RecordInput{Entity: s.Entity}
	var err error
	switch s.Type {
	case dsl.TypeCreate, dsl.TypeUpdate:
		if in.Data, err = sc.ResolveMap(s.Data); err != nil {
			return nil, err
		}
	}
	switch s.Type {
	case dsl.TypeCreate:
		// The id is fixed before the activity runs, so a retry finds the record
		// its first attempt wrote.
		in.ID = recordID(r.epoch, r.id, key).String()
	case dsl.TypeUpdate, dsl.TypeGet:
		if in.ID, err = sc.String(s.Record); err != nil {
			return nil, err
		}
	case dsl.TypeQuery:
		if s.Filter != "" {
			if in.Filter, err = sc.Substitute(s.Filter); err != nil {
				return nil, err
			}
		}
		in.Sort, in.Limit = s.Sort, s.Limit
	}
	name := map[string]string{dsl.TypeCreate: ActCreate, dsl.TypeUpdate: ActUpdate, dsl.TypeGet: ActGet, dsl.TypeQuery: ActQuery}[s.Type]
	in.Call = r.call(key)
	var out RecordOutput
	if err := r.activity(ctx, s, name, in, &out); err != nil {
		return nil, err
	}
	if s.Type == dsl.TypeQuery {
		records := make([]any, len(out.Records))
		for i, rec := range out.Records {
			records[i] = rec
		}
		return map[string]any{"records": records, "count": len(records), "total": out.Total}, nil
	}
	res := map[string]any{"record": out.Record}
	if s.Type == dsl.TypeCreate {
		res["created"] = out.Created
	}
	return res, nil
}
