package main

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The baseline is the floor: a minimal net/http server whose handlers run the same SQL
// as Tessera's core statement directly on a pgx pool. No authentication, no validation,
// no history or outbox rows, no generic record layer.

// baselineSchema holds the baseline's tables, clones of the entity tables.
const baselineSchema = "bench_baseline"

type baselineServer struct {
	pool *pgxpool.Pool
	// stmts counts the raw COPY too, which bypasses pgx's tracer.
	stmts *stmtCounter
}

func startBaselineServer(pool *pgxpool.Pool, stmts *stmtCounter) (addr string, stop func(), err error) {
	b := &baselineServer{pool: pool, stmts: stmts}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /orders", b.createOrder)
	mux.HandleFunc("GET /deals", b.listDeals)
	mux.HandleFunc("POST /items/import", b.importItems)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	go func() { _ = srv.Serve(ln) }()
	return ln.Addr().String(), func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}, nil
}

// order is the create benchmark's record as the baseline reads and answers it.
type order struct {
	ID        uuid.UUID `json:"id"`
	Version   int       `json:"version"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	Title     string    `json:"title"`
	Amount    string    `json:"amount"`
	Quantity  int64     `json:"quantity"`
	Status    string    `json:"status"`
	DueDate   string    `json:"due_date"`
	Paid      bool      `json:"paid"`
	Email     string    `json:"email"`
	Account   string    `json:"account"`
}

// createOrder inserts the posted order as is and answers it with its system columns.
func (b *baselineServer) createOrder(w http.ResponseWriter, r *http.Request) {
	var o order
	if err := json.NewDecoder(r.Body).Decode(&o); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	id, err := uuid.NewV7()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	o.ID = id
	err = b.pool.QueryRow(r.Context(), `INSERT INTO bench_baseline.bench_order
		(id, title, amount, quantity, status, due_date, paid, email, account)
		VALUES ($1, $2, $3::text::numeric, $4, $5, $6::text::date, $7, $8, $9::text::uuid)
		RETURNING version, created_at, updated_at`,
		o.ID, o.Title, o.Amount, o.Quantity, o.Status, o.DueDate, o.Paid, o.Email, o.Account).
		Scan(&o.Version, &o.CreatedAt, &o.UpdatedAt)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	writeJSON(w, http.StatusCreated, o)
}

// deal is one row of the list benchmark's table.
type deal struct {
	ID        uuid.UUID  `json:"id"`
	Version   int        `json:"version"`
	CreatedAt time.Time  `json:"created_at"`
	CreatedBy *uuid.UUID `json:"created_by"`
	UpdatedAt time.Time  `json:"updated_at"`
	UpdatedBy *uuid.UUID `json:"updated_by"`
	DeletedAt *time.Time `json:"deleted_at"`
	Title     *string    `json:"title"`
	Status    *string    `json:"status"`
	Amount    *string    `json:"amount"`
	Owner     *uuid.UUID `json:"owner"`
	CloseDate *string    `json:"close_date"`
}

// baselineListSQL is the list benchmark's query. The table is aliased so ORDER BY sorts
// by the numeric column, not by the selected text of it.
const baselineListSQL = `SELECT d.id, d.version, d.created_at, d.created_by, d.updated_at, d.updated_by, d.deleted_at,
	d.title, d.status, d.amount::text, d.owner, d.close_date::text
	FROM data.bench_deal d
	WHERE d.deleted_at IS NULL AND d.status = $1 AND d.amount > $2::text::numeric
	ORDER BY d.amount DESC, d.id LIMIT 50`

// listDeals answers the first page of deals with a status above an amount, by amount.
func (b *baselineServer) listDeals(w http.ResponseWriter, r *http.Request) {
	rows, err := b.pool.Query(r.Context(), baselineListSQL, r.URL.Query().Get("status"), r.URL.Query().Get("min"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	items, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (deal, error) {
		var d deal
		err := row.Scan(&d.ID, &d.Version, &d.CreatedAt, &d.CreatedBy, &d.UpdatedAt, &d.UpdatedBy, &d.DeletedAt,
			&d.Title, &d.Status, &d.Amount, &d.Owner, &d.CloseDate)
		return d, err
	})
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": items})
}

// importItems streams a CSV body into COPY; the header row names the columns.
func (b *baselineServer) importItems(w http.ResponseWriter, r *http.Request) {
	body := bufio.NewReaderSize(r.Body, 64<<10)
	header, err := body.ReadString('\n')
	if err != nil {
		http.Error(w, "no header row", http.StatusBadRequest)
		return
	}
	var cols []string
	for _, name := range strings.Split(strings.TrimSpace(header), ",") {
		cols = append(cols, pgx.Identifier{name}.Sanitize())
	}
	conn, err := b.pool.Acquire(r.Context())
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	defer conn.Release()
	sql := "COPY bench_baseline.bench_item (" + strings.Join(cols, ", ") + ") FROM STDIN WITH (FORMAT csv)"
	b.stmts.end(b.stmts.add(r.Context(), sql, nil))
	tag, err := conn.Conn().PgConn().CopyFrom(r.Context(), body, sql)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	writeJSON(w, http.StatusOK, map[string]int64{"rows": tag.RowsAffected()})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// cloneTable creates a baseline table shaped exactly like an entity's table (columns,
// defaults, CHECKs, indexes, the generated search column), plus its foreign keys, so
// both sides write the same physical rows.
func cloneTable(ctx context.Context, pool *pgxpool.Pool, entity string, fks map[string]string) error {
	table := baselineSchema + "." + entity
	stmts := []string{
		"CREATE SCHEMA IF NOT EXISTS " + baselineSchema,
		"CREATE TABLE " + table + " (LIKE data." + entity + " INCLUDING ALL)",
	}
	for col, target := range fks {
		stmts = append(stmts, "ALTER TABLE "+table+" ADD FOREIGN KEY ("+col+") REFERENCES data."+target+" (id)")
	}
	for _, s := range stmts {
		if _, err := pool.Exec(ctx, s); err != nil {
			return err
		}
	}
	return nil
}
