package e2e

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/fleetpilot/gateway/migrations"
	"github.com/fleetpilot/gateway/supabase/localstack"
)

// full is a fleet with a row in every tenant table.
type full struct {
	fleet
	Document, Job, Violation, Check, Incident string
}

func newFull(t *testing.T) full {
	t.Helper()
	f := full{fleet: newFleet(t), Document: uuid.NewString(), Job: uuid.NewString(), Violation: uuid.NewString(), Check: uuid.NewString()}
	f.Incident = f.incident(t, "open")
	exec(t, `insert into documents (id, tenant_id, entity_type, entity_id, doc_type, filename, content_type, size_bytes, object_path)
	         values ($1, $2, 'vehicle', $3, 'pcn', 'pcn.pdf', 'application/pdf', 10, $4)`, f.Document, f.Tenant, f.Vehicle, f.Tenant+"/"+f.Document)
	exec(t, `insert into pcn_jobs (id, tenant_id, document_id) values ($1, $2, $3)`, f.Job, f.Tenant, f.Document)
	exec(t, `insert into violations (id, tenant_id, source_job_id, vehicle_id, pcn_number, issuing_authority) values ($1, $2, $3, $4, $5, 'Westminster')`,
		f.Violation, f.Tenant, f.Job, f.Vehicle, "WM"+f.Violation[:8])
	exec(t, `insert into identity_checks (id, tenant_id, customer_id, provider_reference) values ($1, $2, $3, $4)`, f.Check, f.Tenant, f.Customer, f.Check)
	exec(t, `insert into tenant_quota_usage (tenant_id, quota, usage_date, used) values ($1, 'scans', current_date, 1)`, f.Tenant)
	return f
}

// tenantTables maps every tenant table to an insert of a new row for f
// (valid in every way except, when run as another tenant, the tenant).
func tenantTables(f full) map[string]struct {
	sql  string
	args []any
} {
	type ins = struct {
		sql  string
		args []any
	}
	return map[string]ins{
		"vehicles":  {`insert into vehicles (tenant_id, registration) values ($1, 'ZZ99ZZZ')`, []any{f.Tenant}},
		"customers": {`insert into customers (tenant_id, full_name) values ($1, 'X')`, []any{f.Tenant}},
		"bookings": {`insert into bookings (tenant_id, vehicle_id, customer_id, starts_at, ends_at) values ($1, $2, $3, now(), now() + interval '1 hour')`,
			[]any{f.Tenant, f.Vehicle, f.Customer}},
		"incidents": {`insert into incidents (tenant_id, vehicle_id, occurred_at, type, description) values ($1, $2, now(), 'other', 'x')`, []any{f.Tenant, f.Vehicle}},
		"documents": {`insert into documents (tenant_id, entity_type, entity_id, doc_type, filename, content_type, size_bytes, object_path)
		               values ($1, 'customer', $2, 'other', 'a.pdf', 'application/pdf', 1, gen_random_uuid()::text)`, []any{f.Tenant, f.Customer}},
		"pcn_jobs":        {`insert into pcn_jobs (tenant_id, document_id) values ($1, $2)`, []any{f.Tenant, f.Document}},
		"violations":      {`insert into violations (tenant_id, pcn_number, issuing_authority) values ($1, gen_random_uuid()::text, 'TfL')`, []any{f.Tenant}},
		"identity_checks": {`insert into identity_checks (tenant_id, customer_id) values ($1, $2)`, []any{f.Tenant, f.Customer}},
		"tenant_quota_usage": {`insert into tenant_quota_usage (tenant_id, quota, usage_date, used) values ($1, 'dvla_lookups', current_date, 0)`,
			[]any{f.Tenant}},
	}
}

// asUser runs fn in a transaction as PostgREST would for a user of tenant:
// role authenticated, request.jwt.claims set; then rolls back.
func asUser(t *testing.T, tenant string, fn func(tx pgx.Tx)) {
	t.Helper()
	ctx := context.Background()
	tx, err := db.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	claims := fmt.Sprintf(`{"sub":%q,"role":"authenticated","app_metadata":{"tenant_id":%q}}`, uuid.NewString(), tenant)
	if _, err := tx.Exec(ctx, `select set_config('role', 'authenticated', true), set_config('request.jwt.claims', $1, true)`, claims); err != nil {
		t.Fatal(err)
	}
	fn(tx)
}

// savepoint runs sql inside a savepoint so that an expected error does not
// abort the surrounding transaction.
func savepoint(tx pgx.Tx, sql string, args ...any) (pgconn.CommandTag, error) {
	ctx := context.Background()
	sp, err := tx.Begin(ctx)
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	tag, err := sp.Exec(ctx, sql, args...)
	if err != nil {
		_ = sp.Rollback(ctx)
		return tag, err
	}
	return tag, sp.Commit(ctx)
}

func TestRowLevelSecurity(t *testing.T) {
	needStack(t)
	a, b := newFull(t), newFull(t)
	inserts := tenantTables(b)
	for table, ins := range inserts {
		t.Run(table, func(t *testing.T) {
			asUser(t, a.Tenant, func(tx pgx.Tx) {
				ctx := context.Background()
				var mine, theirs int
				if err := tx.QueryRow(ctx, fmt.Sprintf(`select count(*) filter (where tenant_id = $1), count(*) filter (where tenant_id = $2) from %s`, table), a.Tenant, b.Tenant).Scan(&mine, &theirs); err != nil {
					t.Fatal(err)
				}
				if mine == 0 || theirs != 0 {
					t.Errorf("visible rows: own %d (want > 0), other tenant's %d (want 0)", mine, theirs)
				}
				if _, err := savepoint(tx, ins.sql, ins.args...); err == nil {
					t.Error("inserted a row for another tenant")
				}
				if tag, err := savepoint(tx, fmt.Sprintf(`update %s set updated_at = now() where tenant_id = $1`, table), b.Tenant); err == nil && tag.RowsAffected() != 0 {
					t.Errorf("updated %d of another tenant's rows", tag.RowsAffected())
				}
				if tag, err := savepoint(tx, fmt.Sprintf(`delete from %s where tenant_id = $1`, table), b.Tenant); err == nil && tag.RowsAffected() != 0 {
					t.Errorf("deleted %d of another tenant's rows", tag.RowsAffected())
				}
			})
		})
	}
	t.Run("tenants", func(t *testing.T) {
		asUser(t, a.Tenant, func(tx pgx.Tx) {
			var ids []string
			rows, err := tx.Query(context.Background(), `select id::text from tenants`)
			if err != nil {
				t.Fatal(err)
			}
			for rows.Next() {
				var id string
				_ = rows.Scan(&id)
				ids = append(ids, id)
			}
			if len(ids) != 1 || ids[0] != a.Tenant {
				t.Errorf("tenants visible: %v", ids)
			}
		})
	})
}

// TestEveryTableIsProtected checks the catalog: each public table has RLS on,
// at least one policy, a full grant to service_role, and its triggers.
func TestEveryTableIsProtected(t *testing.T) {
	needStack(t)
	rows, err := db.Query(context.Background(), `
	  select c.relname, c.relrowsecurity,
	         (select count(*) from pg_policy p where p.polrelid = c.oid),
	         has_table_privilege('service_role', c.oid, 'select,insert,update,delete'),
	         exists (select 1 from pg_trigger g where g.tgrelid = c.oid and g.tgname = 'set_updated_at'),
	         has_table_privilege('anon', c.oid, 'select')
	  from pg_class c join pg_namespace n on n.oid = c.relnamespace
	  where n.nspname = 'public' and c.relkind = 'r' order by 1`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var name string
		var rls, svc, trig, anon bool
		var policies int
		if err := rows.Scan(&name, &rls, &policies, &svc, &trig, &anon); err != nil {
			t.Fatal(err)
		}
		n++
		if !rls || policies == 0 || !svc || !trig || anon {
			t.Errorf("%s: rls %v, policies %d, service_role grant %v, updated_at trigger %v, anon can read %v", name, rls, policies, svc, trig, anon)
		}
	}
	if n != 11 {
		t.Errorf("%d public tables, want 11", n)
	}
}

// TestMigrationsRecheck: applying every migration again on the migrated
// database succeeds and changes nothing in the catalog.
func TestMigrationsRecheck(t *testing.T) {
	needStack(t)
	before := catalog(t)
	ms, err := localstack.ReadMigrations(migrations.Files)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) < 5 {
		t.Fatalf("%d migrations", len(ms))
	}
	conn, err := db.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	for _, m := range ms {
		if err := localstack.ApplySQL(context.Background(), conn.Conn(), m.SQL); err != nil {
			t.Errorf("re-applying %s_%s: %v", m.Version, m.Name, err)
		}
	}
	if after := catalog(t); after != before {
		t.Errorf("catalog changed by re-applying:\n before %s\n after  %s", before, after)
	}
}

func catalog(t *testing.T) string {
	t.Helper()
	var s string
	err := db.QueryRow(context.Background(), `select format('tables=%s indexes=%s policies=%s triggers=%s constraints=%s functions=%s',
	    (select count(*) from pg_tables where schemaname = 'public'),
	    (select count(*) from pg_indexes where schemaname = 'public'),
	    (select count(*) from pg_policies where schemaname = 'public'),
	    (select count(*) from pg_trigger g join pg_class c on c.oid = g.tgrelid join pg_namespace n on n.oid = c.relnamespace where n.nspname = 'public' and not g.tgisinternal),
	    (select count(*) from pg_constraint k join pg_namespace n on n.oid = k.connamespace where n.nspname = 'public'),
	    (select count(*) from pg_proc p join pg_namespace n on n.oid = p.pronamespace where n.nspname = 'public'))`).Scan(&s)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func sqlstate(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// TestSchemaRules: uniqueness, cross-tenant references and checks are
// enforced by the database itself, for the service role too.
func TestSchemaRules(t *testing.T) {
	needStack(t)
	a, b := newFull(t), newFull(t)
	regA := row(t, "vehicles", a.Vehicle)["registration"].(string)
	violA := row(t, "violations", a.Violation)
	bFreeJob := uuid.NewString() // a job of B's with no violation yet
	// needs_attention: the document's fixture job is its one live scan.
	exec(t, `insert into pcn_jobs (id, tenant_id, document_id, status) values ($1, $2, $3, 'needs_attention')`, bFreeJob, b.Tenant, b.Document)
	tests := []struct {
		name  string
		sql   string
		args  []any
		state string // "" = must succeed
	}{
		{"one live scan per document", `insert into pcn_jobs (tenant_id, document_id) values ($1, $2)`, []any{b.Tenant, b.Document}, "23505"},
		{"a finished scan does not block a new one", `insert into pcn_jobs (tenant_id, document_id, status) values ($1, $2, 'needs_attention')`, []any{b.Tenant, b.Document}, ""},
		{"registration unique per tenant", `insert into vehicles (tenant_id, registration) values ($1, $2)`, []any{a.Tenant, regA}, "23505"},
		{"same registration in another tenant", `insert into vehicles (tenant_id, registration) values ($1, $2)`, []any{b.Tenant, regA}, ""},
		{"registration must be normalised", `insert into vehicles (tenant_id, registration) values ($1, 'ab 12 cde')`, []any{a.Tenant}, "23514"},
		{"pcn unique per tenant and authority", `insert into violations (tenant_id, pcn_number, issuing_authority) values ($1, $2, $3)`,
			[]any{a.Tenant, violA["pcn_number"], violA["issuing_authority"]}, "23505"},
		{"same pcn at another authority", `insert into violations (tenant_id, pcn_number, issuing_authority) values ($1, $2, 'Camden')`,
			[]any{a.Tenant, violA["pcn_number"]}, ""},
		{"one violation per job", `insert into violations (tenant_id, source_job_id, pcn_number, issuing_authority) values ($1, $2, 'X1', 'Camden')`,
			[]any{a.Tenant, a.Job}, "23505"},
		{"booking on another tenant's vehicle", `insert into bookings (tenant_id, vehicle_id, customer_id, starts_at, ends_at) values ($1, $2, $3, now(), now() + interval '1 day')`,
			[]any{a.Tenant, b.Vehicle, a.Customer}, "23503"},
		{"incident on another tenant's booking", `insert into incidents (tenant_id, vehicle_id, booking_id, occurred_at, type, description) values ($1, $2, $3, now(), 'other', 'x')`,
			[]any{a.Tenant, a.Vehicle, b.Booking}, "23503"},
		{"document of another tenant's entity", `insert into documents (tenant_id, entity_type, entity_id, doc_type, filename, content_type, size_bytes, object_path) values ($1, 'booking', $2, 'other', 'a', 'application/pdf', 1, gen_random_uuid()::text)`,
			[]any{a.Tenant, b.Booking}, "23503"},
		{"job on another tenant's document", `insert into pcn_jobs (tenant_id, document_id) values ($1, $2)`, []any{a.Tenant, b.Document}, "23503"},
		{"violation of another tenant's job", `insert into violations (tenant_id, source_job_id, pcn_number, issuing_authority) values ($1, $2, 'X2', 'Camden')`,
			[]any{a.Tenant, bFreeJob}, "23503"},
		{"identity check of another tenant's customer", `insert into identity_checks (tenant_id, customer_id) values ($1, $2)`, []any{a.Tenant, b.Customer}, "23503"},
		{"booking must end after it starts", `insert into bookings (tenant_id, vehicle_id, customer_id, starts_at, ends_at) values ($1, $2, $3, now(), now())`,
			[]any{a.Tenant, a.Vehicle, a.Customer}, "23514"},
		{"rows never change tenant", `update customers set tenant_id = $1 where id = $2`, []any{b.Tenant, a.Customer}, "23514"},
		{"unknown incident status", `update incidents set status = 'lost' where id = $1`, []any{a.Incident}, "23514"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			tx, err := db.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback(ctx) //nolint:errcheck
			// As the service role: bypasses RLS, so only the schema protects.
			if _, err := tx.Exec(ctx, `set local role service_role`); err != nil {
				t.Fatal(err)
			}
			_, err = tx.Exec(ctx, tc.sql, tc.args...)
			if got := sqlstate(err); got != tc.state {
				t.Errorf("SQLSTATE = %q (%v), want %q", got, err, tc.state)
			}
		})
	}
}

func TestRegistrationReusableAfterArchive(t *testing.T) {
	needStack(t)
	f := newFleet(t)
	reg := row(t, "vehicles", f.Vehicle)["registration"].(string)
	exec(t, `update vehicles set archived_at = now() where id = $1`, f.Vehicle)
	exec(t, `insert into vehicles (tenant_id, registration) values ($1, $2)`, f.Tenant, reg)
}

func TestUpdatedAtMoves(t *testing.T) {
	needStack(t)
	f := newFull(t)
	for _, table := range []string{"vehicles", "customers", "bookings", "incidents", "documents", "pcn_jobs", "violations", "identity_checks"} {
		id := map[string]string{"vehicles": f.Vehicle, "customers": f.Customer, "bookings": f.Booking, "incidents": f.Incident,
			"documents": f.Document, "pcn_jobs": f.Job, "violations": f.Violation, "identity_checks": f.Check}[table]
		exec(t, fmt.Sprintf(`update %s set updated_at = '2000-01-01' where id = $1`, table), id)
		exec(t, fmt.Sprintf(`update %s set archived_at = null where id = $1`, table), id)
		if got := fmt.Sprint(row(t, table, id)["updated_at"]); got[:4] == "2000" {
			t.Errorf("%s: updated_at stayed %s", table, got)
		}
	}
}
