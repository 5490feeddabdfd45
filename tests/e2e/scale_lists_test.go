package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Big-tenant lists: a tenant with 300,000 incidents (and 100,000 documents and
// identity checks), seeded once by SQL for the tests below. Assertions are on
// counts and plans, never on times.
const (
	bigIncidents = 300_000
	bigOthers    = 100_000
	bigVehicles  = 20
)

type bigFleet struct {
	fleet
	Vehicles []string
}

var (
	bigOnce sync.Once
	big     bigFleet
	bigErr  error
)

// bigTenant seeds the big tenant on first use. Rows come in groups of three
// sharing one created_at, so the id tie-breaker is exercised on every page;
// every 50th incident is archived (never listed).
func bigTenant(t testing.TB) bigFleet {
	t.Helper()
	needStack(t)
	bigOnce.Do(func() {
		start := time.Now()
		big, bigErr = seedBig(t.Context())
		t.Logf("seeded the big tenant in %s", time.Since(start).Round(time.Millisecond))
	})
	if bigErr != nil {
		t.Fatalf("seed the big tenant: %v", bigErr)
	}
	return big
}

func seedBig(ctx context.Context) (bigFleet, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Minute)
	defer cancel()
	f := bigFleet{fleet: fleet{Tenant: uuid.NewString(), User: uuid.NewString(), Customer: uuid.NewString()}}
	for range bigVehicles {
		f.Vehicles = append(f.Vehicles, uuid.NewString())
	}
	f.Vehicle = f.Vehicles[0]
	steps := []struct {
		sql  string
		args []any
	}{
		{`insert into tenants (id, name) values ($1, 'Big')`, []any{f.Tenant}},
		{`insert into vehicles (id, tenant_id, registration)
		  select v, $2, 'BG' || lpad(i::text, 5, '0') from unnest($1::uuid[]) with ordinality as x(v, i)`, []any{f.Vehicles, f.Tenant}},
		{`insert into customers (id, tenant_id, full_name) values ($1, $2, 'Big customer')`, []any{f.Customer, f.Tenant}},
		{`insert into incidents (tenant_id, vehicle_id, occurred_at, type, status, description, created_at, archived_at)
		  select $1, ($2::uuid[])[1 + g % $3], t, (array['damage','accident','theft','breakdown','other'])[1 + g % 5],
		         (array['open','investigating','resolved','closed'])[1 + g % 4], 'seeded', t,
		         case when g % 50 = 0 then t end
		  from generate_series(1, $4::int) g, lateral (select timestamptz '2026-01-01 00:00:00+00' - (g / 3) * interval '1 second' as t) x`,
			[]any{f.Tenant, f.Vehicles, bigVehicles, bigIncidents}},
		{`insert into documents (tenant_id, entity_type, entity_id, doc_type, filename, content_type, size_bytes, object_path, status, created_at)
		  select $1::uuid, 'vehicle', ($2::uuid[])[1 + g % $3], (array['pcn','mot','insurance'])[1 + g % 3], 'f.pdf', 'application/pdf', 10,
		         $1::text || '/big/' || g, (array['pending_upload','uploaded'])[1 + g % 2], timestamptz '2026-01-01 00:00:00+00' - (g / 3) * interval '1 second'
		  from generate_series(1, $4::int) g`, []any{f.Tenant, f.Vehicles, bigVehicles, bigOthers}},
		{`insert into identity_checks (tenant_id, customer_id, status, created_at)
		  select $1, $2, 'passed', timestamptz '2026-01-01 00:00:00+00' - (g / 3) * interval '1 second'
		  from generate_series(1, $3::int) g`, []any{f.Tenant, f.Customer, bigOthers}},
		{`analyze incidents, documents, identity_checks`, nil},
	}
	// One connection with triggers off (foreign-key checks and the document
	// entity check included): the rows are consistent by construction, and
	// row-by-row checks would make seeding minutes instead of seconds.
	conn, err := db.Acquire(ctx)
	if err != nil {
		return f, err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `set session_replication_role = replica`); err != nil {
		return f, err
	}
	defer func() { _, _ = conn.Exec(context.WithoutCancel(ctx), `reset session_replication_role`) }()
	for _, s := range steps {
		start := time.Now()
		_, err := conn.Exec(ctx, s.sql, s.args...)
		slog.Info("big tenant seed step", "took", time.Since(start).String(), "sql", strings.Fields(s.sql)[:3])
		if err != nil {
			return f, fmt.Errorf("%s: %w", s.sql, err)
		}
	}
	return f, nil
}

// listShape is one list query the gateway sends, written as the SQL PostgREST
// runs for it (a prepared statement with the filter values as parameters).
type listShape struct {
	name, table, where string
	args               []any
	spread             int    // rows read per row listed: an index serves one filter, the other filters rows out
	tenant             string // another tenant than the big one
}

func listShapes(f bigFleet) []listShape {
	return []listShape{
		{"incidents", "incidents", "", nil, 1, ""},
		{"incidents by status", "incidents", `status = $2`, []any{"open"}, 1, ""},
		{"incidents by type", "incidents", `type = $2`, []any{"theft"}, 1, ""},
		{"incidents by vehicle", "incidents", `vehicle_id = $2`, []any{f.Vehicles[3]}, 1, ""},
		{"incidents by status and type", "incidents", `status = $2 and type = $3`, []any{"closed", "damage"}, 5, ""},
		{"documents", "documents", "", nil, 1, ""},
		{"documents by entity", "documents", `entity_type = $2 and entity_id = $3`, []any{"vehicle", f.Vehicles[2]}, 1, ""},
		{"documents by entity id", "documents", `entity_id = $2`, []any{f.Vehicles[2]}, 1, ""},
		{"documents by entity type", "documents", `entity_type = $2`, []any{"vehicle"}, 1, ""},
		{"documents by doc type", "documents", `doc_type = $2`, []any{"mot"}, 1, ""},
		{"documents by status", "documents", `status = $2`, []any{"uploaded"}, 1, ""},
		{"identity checks of a customer", "identity_checks", `customer_id = $2`, []any{f.Customer}, 1, ""},
	}
}

// TestListQueriesUseIndexes: on the big tenant, every list query (first page,
// a cursor page deep in the list, an offset page at the bound, and the
// estimated count) is an index scan, never a sequential scan or a sort of
// all matching rows, under both custom and generic plans (PostgREST runs
// prepared statements). A page reads about a page of index entries at any
// depth: checked with EXPLAIN ANALYZE row counts.
func TestListQueriesUseIndexes(t *testing.T) {
	f := bigTenant(t)
	ctx := t.Context()
	small := newFleet(t)
	for range 5 {
		small.incident(t, "open")
	}
	shapes := append(listShapes(f), listShape{name: "a small tenant's incidents", table: "incidents", spread: 1, tenant: small.Tenant})
	for _, sh := range shapes {
		t.Run(sh.name, func(t *testing.T) {
			where := `tenant_id = $1 and archived_at is null`
			if sh.where != "" {
				where += " and " + sh.where
			}
			tenant := f.Tenant
			if sh.tenant != "" {
				tenant = sh.tenant
			}
			args := append([]any{tenant}, sh.args...)
			n := len(args)
			// The row 100,000 deep (or as deep as the filtered list goes).
			var at time.Time
			var id string
			var depth int
			if err := db.QueryRow(ctx, `select count(*) from `+sh.table+` where `+where, args...).Scan(&depth); err != nil {
				t.Fatal(err)
			}
			depth = min(100_000, depth/2)
			if err := db.QueryRow(ctx, fmt.Sprintf(`select created_at, id from %s where %s order by created_at desc, id desc offset %d limit 1`,
				sh.table, where, depth), args...).Scan(&at, &id); err != nil {
				t.Fatal(err)
			}
			order := ` order by created_at desc, id desc`
			queries := []struct {
				name, sql string
				args      []any
				maxRead   int  // rows a query may read; 0: unbounded (offset)
				anyScan   bool // only the rows read matter, not how
			}{
				{name: "first page", sql: `select * from ` + sh.table + ` where ` + where + order + ` limit 201 offset 0`, args: args, maxRead: 201},
				{name: "cursor page", sql: fmt.Sprintf(`select * from %s where %s and created_at <= $%d and (created_at < $%d or (created_at = $%d and id < $%d))%s limit 201`,
					sh.table, where, n+1, n+2, n+3, n+4, order), args: append(append([]any{}, args...), at, at, at, id), maxRead: 201 + 3},
				{name: "offset page at the bound", sql: `select * from ` + sh.table + ` where ` + where + order + ` limit 201 offset 1000`, args: args},
				// PostgREST's count=estimated counts at most max-rows + 1 rows.
				// When the tenant is most of the table the planner may find them
				// by a sequential scan that stops early: then only the rows read
				// are checked, bounded by max-rows, not by the tenant's 300,000.
				{name: "estimated count", sql: `select count(*) from (select 1 from ` + sh.table + ` where ` + where + ` limit 1001) c`, args: args,
					maxRead: 2 * 1001, anyScan: sh.tenant == ""},
			}
			for _, q := range queries {
				for _, mode := range []string{"force_custom_plan", "force_generic_plan"} {
					plan := explain(t, mode, q.sql, q.args)
					var nodes []string
					read := 0
					walkPlan(plan, func(p map[string]any) {
						typ, _ := p["Node Type"].(string)
						nodes = append(nodes, typ)
						if strings.HasSuffix(typ, "Scan") && typ != "Bitmap Heap Scan" {
							read += int(num(p["Actual Rows"]) + num(p["Rows Removed by Filter"]))
						}
					})
					joined := strings.Join(nodes, " > ")
					if strings.Contains(joined, "Sort") || !q.anyScan && (strings.Contains(joined, "Seq Scan") || !strings.Contains(joined, "Index")) {
						t.Errorf("%s (%s): plan %s", q.name, mode, joined)
					}
					bound := q.maxRead * sh.spread
					if q.anyScan {
						bound = q.maxRead * 12 // about 25,000 rows whatever the filter
					}
					if q.maxRead > 0 && read > bound {
						t.Errorf("%s (%s): read %d rows, want at most %d (plan %s)", q.name, mode, read, bound, joined)
					}
				}
			}
		})
	}
}

// explain runs EXPLAIN (ANALYZE, FORMAT JSON) of sql as a prepared statement
// under plan_cache_mode mode, in a transaction that is rolled back.
func explain(t *testing.T, mode, sql string, args []any) map[string]any {
	t.Helper()
	ctx := t.Context()
	tx, err := db.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, `set local plan_cache_mode = `+mode); err != nil {
		t.Fatal(err)
	}
	var out []byte
	if err := tx.QueryRow(ctx, `explain (analyze, format json) `+sql, args...).Scan(&out); err != nil {
		t.Fatalf("explain %s: %v", sql, err)
	}
	var plans []struct {
		Plan map[string]any `json:"Plan"`
	}
	if err := json.Unmarshal(out, &plans); err != nil || len(plans) != 1 {
		t.Fatalf("plan %s: %v", out, err)
	}
	return plans[0].Plan
}

func walkPlan(p map[string]any, fn func(map[string]any)) {
	fn(p)
	subs, _ := p["Plans"].([]any)
	for _, s := range subs {
		if m, ok := s.(map[string]any); ok {
			walkPlan(m, fn)
		}
	}
}

func num(v any) float64 {
	f, _ := v.(float64)
	return f
}

// TestScaleListCursorWalk walks all 300,000 incidents of the big tenant
// through the gateway by cursor at the largest page size while rows are
// inserted: every row that existed before the walk is seen exactly once, no
// row twice, rows inserted ahead of the cursor are seen, and rows inserted
// behind it (newer) are not.
func TestScaleListCursorWalk(t *testing.T) {
	f := bigTenant(t)
	ctx := t.Context()
	gw, _ := gatewayWith(t, secretKey(), gwOpts{env: map[string]string{"RATE_LIMIT_TENANT_PER_SECOND": "0", "RATE_LIMIT_IP_PER_SECOND": "0"}})
	tok := f.token(t)

	before := map[string]bool{}
	rows, err := db.Query(ctx, `select id::text from incidents where tenant_id = $1 and archived_at is null`, f.Tenant)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		before[id] = false
	}
	if want := bigIncidents - bigIncidents/50; len(before) < want {
		t.Fatalf("%d live incidents before the walk, want at least %d", len(before), want)
	}

	// A writer inserting new incidents (newest first, so behind the cursor)
	// all through the walk after the first page, as users would.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var behind []string
	writer := func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			var id string
			if err := db.QueryRow(context.Background(), `insert into incidents (tenant_id, vehicle_id, occurred_at, type, description)
				values ($1, $2, now(), 'other', 'during the walk') returning id::text`, f.Tenant, f.Vehicle).Scan(&id); err != nil {
				t.Errorf("concurrent insert: %v", err)
				return
			}
			behind = append(behind, id)
		}
	}

	halt := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer halt() // also when the walk fails halfway

	seen := map[string]int{}
	ahead := map[string]bool{} // inserted ahead of the cursor: must be seen
	var last struct {
		at time.Time
		id string
	}
	path := "/incidents?limit=200"
	pages := 0
	for path != "" {
		r := do(t, gw.URL, http.MethodGet, path, tok, "")
		want(t, r, 200)
		pages++
		var page []struct {
			ID        string    `json:"id"`
			CreatedAt time.Time `json:"created_at"`
		}
		r.json(t, &page)
		if pages == 1 {
			wg.Add(1)
			go writer()
		}
		for _, row := range page {
			seen[row.ID]++
			if !last.at.IsZero() && (row.CreatedAt.After(last.at) || row.CreatedAt.Equal(last.at) && row.ID >= last.id) {
				t.Fatalf("page %d: %s (%s) does not sort after %s (%s)", pages, row.ID, row.CreatedAt, last.id, last.at)
			}
			last.at, last.id = row.CreatedAt, row.ID
		}
		next := r.Header.Get("X-Next-Cursor")
		if link := r.Header.Get("Link"); (next == "") != (link == "") {
			t.Fatalf("page %d: X-Next-Cursor %q but Link %q", pages, next, link)
		}
		if next == "" {
			if len(page) == 0 && pages > 1 {
				t.Errorf("page %d: an empty last page (a next cursor was given without a next page)", pages)
			}
			break
		}
		path = "/incidents?limit=200&cursor=" + next
		// Every 100 pages, rows dated inside the part still to walk,
		// including one sharing the timestamp of the next row: an offset walk
		// would repeat rows here, the keyset must not.
		if pages%100 == 0 && len(page) > 0 {
			var id, tie string
			if err := db.QueryRow(ctx, `insert into incidents (tenant_id, vehicle_id, occurred_at, type, description, created_at)
				values ($1, $2, now(), 'other', 'ahead', $3::timestamptz - interval '90 seconds') returning id::text`,
				f.Tenant, f.Vehicle, last.at).Scan(&id); err != nil {
				t.Fatal(err)
			}
			if err := db.QueryRow(ctx, `insert into incidents (id, tenant_id, vehicle_id, occurred_at, type, description, created_at)
				values (('00000000-0000-4000-8000-' || lpad($4::text, 12, '0'))::uuid, $1, $2, now(), 'other', 'tie ahead', $3) returning id::text`,
				f.Tenant, f.Vehicle, last.at, fmt.Sprint(pages)).Scan(&tie); err != nil {
				t.Fatal(err)
			}
			ahead[id], ahead[tie] = true, true
		}
	}
	halt()

	missing, dup := 0, 0
	for id, n := range seen {
		if n > 1 {
			dup++
		}
		if _, ok := before[id]; ok {
			before[id] = true
		}
	}
	for _, ok := range before {
		if !ok {
			missing++
		}
	}
	for id := range ahead {
		if seen[id] != 1 {
			t.Errorf("row %s inserted ahead of the cursor seen %d times", id, seen[id])
		}
	}
	for _, id := range behind {
		if seen[id] != 0 {
			t.Errorf("row %s inserted behind the cursor was listed", id)
		}
	}
	t.Logf("%d pages, %d rows seen, %d pre-existing, %d inserted ahead, %d inserted behind", pages, len(seen), len(before), len(ahead), len(behind))
	if missing != 0 || dup != 0 {
		t.Fatalf("%d pre-existing rows missing, %d rows seen more than once", missing, dup)
	}
	if len(ahead) == 0 || len(behind) == 0 {
		t.Fatalf("the walk ran without concurrent inserts (ahead %d, behind %d)", len(ahead), len(behind))
	}
}
