package workflows

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/google/uuid"

	"github.com/tessera/tessera/engine"
	"github.com/tessera/tessera/engine/schema"
)

// CreateRecord creates a record with the id the step chose, so a retry returns the
// record the first attempt wrote.
func (a *Activities) CreateRecord(ctx context.Context, in RecordInput) (RecordOutput, error) {
	actor, err := a.beginAs(ctx, in.Call)
	if err != nil {
		return RecordOutput{}, err
	}
	id, err := uuid.Parse(in.ID)
	if err != nil {
		return RecordOutput{}, configError("record id %q: %v", in.ID, err)
	}
	body, err := json.Marshal(in.Data)
	if err != nil {
		return RecordOutput{}, configError("record data: %v", err)
	}
	rec, created, err := a.Engine.CreateWithID(ctx, actor, in.Entity, id, body)
	if err != nil {
		return RecordOutput{}, appError(err)
	}
	out, err := decodeRecord(rec)
	return RecordOutput{Record: out, Created: created}, err
}

// UpdateRecord applies a merge patch; applying the same patch twice changes nothing
// the second time, so a retry is harmless.
func (a *Activities) UpdateRecord(ctx context.Context, in RecordInput) (RecordOutput, error) {
	actor, err := a.beginAs(ctx, in.Call)
	if err != nil {
		return RecordOutput{}, err
	}
	body, err := json.Marshal(in.Data)
	if err != nil {
		return RecordOutput{}, configError("record data: %v", err)
	}
	return onRecord(in.ID, func(id uuid.UUID) (json.RawMessage, error) {
		return a.Engine.Update(ctx, actor, in.Entity, id, body, nil)
	})
}

// GetRecord reads one record as the run's actor.
func (a *Activities) GetRecord(ctx context.Context, in RecordInput) (RecordOutput, error) {
	actor, err := a.beginAs(ctx, in.Call)
	if err != nil {
		return RecordOutput{}, err
	}
	return onRecord(in.ID, func(id uuid.UUID) (json.RawMessage, error) {
		return a.Engine.Get(ctx, actor, in.Entity, id, engine.GetOptions{})
	})
}

// onRecord runs op on the record a step names and answers with what op returns.
func onRecord(recordID string, op func(id uuid.UUID) (json.RawMessage, error)) (RecordOutput, error) {
	id, err := parseRecordID(recordID)
	if err != nil {
		return RecordOutput{}, err
	}
	rec, err := op(id)
	if err != nil {
		return RecordOutput{}, appError(err)
	}
	out, err := decodeRecord(rec)
	return RecordOutput{Record: out}, err
}

// QueryRecords lists records with a filter whose workflow references were already
// replaced by literals.
func (a *Activities) QueryRecords(ctx context.Context, in RecordInput) (RecordOutput, error) {
	actor, err := a.beginAs(ctx, in.Call)
	if err != nil {
		return RecordOutput{}, err
	}
	res, err := a.Engine.List(ctx, actor, in.Entity, engine.ListOptions{Filter: in.Filter, Sort: in.Sort, Limit: in.Limit})
	if err != nil {
		return RecordOutput{}, appError(err)
	}
	out := RecordOutput{Records: make([]map[string]any, 0, len(res.Items)), Total: res.Total}
	for _, item := range res.Items {
		rec, err := decodeRecord(item)
		if err != nil {
			return RecordOutput{}, err
		}
		out.Records = append(out.Records, rec)
	}
	return out, nil
}

func parseRecordID(s string) (uuid.UUID, error) {
	id, err := uuid.Parse(s)
	if err != nil {
		return uuid.Nil, configError("%q is not a record id", s)
	}
	return id, nil
}

func decodeRecord(raw json.RawMessage) (map[string]any, error) {
	rec, err := schema.DecodeRecord(raw)
	if err != nil {
		return nil, fmt.Errorf("decode record: %w", err)
	}
	return rec, nil
}
