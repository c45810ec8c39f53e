package auth

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/jackc/pgx/v5"

	"github.com/tessera/tessera/engine/dbtx"
)

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

// ErrRoleNotFound is returned for an unknown role.
var ErrRoleNotFound = errors.New("role not found")

// PutRole stores a role (validated by the caller against the entities it names), in
// the transaction ctx carries if any (dbtx).
func (s *Service) PutRole(ctx context.Context, r Role) error {
	def, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = dbtx.Of(ctx, s.pool).Exec(ctx, `INSERT INTO tessera.roles (name, module, definition) VALUES ($1, $2, $3)
		ON CONFLICT (name) DO UPDATE SET module = EXCLUDED.module, definition = EXCLUDED.definition, updated_at = now()`,
		r.Name, r.Module, def)
	return err
}

// GetRole reads one role.
func (s *Service) GetRole(ctx context.Context, name string) (Role, error) {
	var def []byte
	err := s.pool.QueryRow(ctx, `SELECT definition FROM tessera.roles WHERE name = $1`, name).Scan(&def)
	if errors.Is(err, pgx.ErrNoRows) {
		return Role{}, fmt.Errorf("%s: %w", name, ErrRoleNotFound)
	}
	if err != nil {
		return Role{}, err
	}
	var r Role
	err = json.Unmarshal(def, &r)
	return r, err
}

// ListRoles reads every role, by name.
func (s *Service) ListRoles(ctx context.Context) ([]Role, error) {
	rows, err := s.pool.Query(ctx, `SELECT definition FROM tessera.roles ORDER BY name`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (Role, error) {
		var (
			def []byte
			r   Role
		)
		if err := row.Scan(&def); err != nil {
			return r, err
		}
		err := json.Unmarshal(def, &r)
		return r, err
	})
}
