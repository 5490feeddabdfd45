package localstack

import (
	"context"
	"fmt"
	"io/fs"
	"regexp"
	"sort"

	"github.com/jackc/pgx/v5"
)

// supabaseStandIns creates what every Supabase database has before the
// project's migrations run: the API roles and the auth schema's JWT helpers
// (as in supabase/postgres' init scripts). Idempotent.
const supabaseStandIns = `
do $$
begin
  if not exists (select 1 from pg_roles where rolname = 'anon') then
    create role anon nologin noinherit;
  end if;
  if not exists (select 1 from pg_roles where rolname = 'authenticated') then
    create role authenticated nologin noinherit;
  end if;
  if not exists (select 1 from pg_roles where rolname = 'service_role') then
    create role service_role nologin noinherit bypassrls;
  end if;
  if not exists (select 1 from pg_roles where rolname = 'authenticator') then
    create role authenticator login noinherit;
  end if;
end
$$;
grant anon, authenticated, service_role to authenticator;
alter role authenticator set statement_timeout = '8s';

create schema if not exists auth;
grant usage on schema auth to anon, authenticated, service_role;
grant usage on schema public to anon, authenticated, service_role;

create or replace function auth.uid() returns uuid language sql stable as $f$
  select coalesce(nullif(current_setting('request.jwt.claim.sub', true), ''),
                  (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub'))::uuid $f$;
create or replace function auth.role() returns text language sql stable as $f$
  select coalesce(nullif(current_setting('request.jwt.claim.role', true), ''),
                  (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role'))::text $f$;
create or replace function auth.jwt() returns jsonb language sql stable as $f$
  select coalesce(nullif(current_setting('request.jwt.claim', true), ''),
                  nullif(current_setting('request.jwt.claims', true), ''))::jsonb $f$;
grant execute on all functions in schema auth to anon, authenticated, service_role;

-- As the Supabase CLI records applied migrations.
create schema if not exists supabase_migrations;
create table if not exists supabase_migrations.schema_migrations (
  version    text primary key,
  name       text not null,
  applied_at timestamptz not null default now()
);
`

var migrationName = regexp.MustCompile(`^([0-9]{14})_([a-z0-9_]+)\.sql$`)

// Migration is one file of the migrations folder.
type Migration struct {
	Version, Name, SQL string
}

// ReadMigrations lists the migrations in fsys in version order, refusing a
// file whose name does not follow {YYYYMMDDHHMMSS}_{description}.sql.
func ReadMigrations(fsys fs.FS) ([]Migration, error) {
	names, err := fs.Glob(fsys, "*.sql")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	var ms []Migration
	for _, n := range names {
		m := migrationName.FindStringSubmatch(n)
		if m == nil {
			return nil, fmt.Errorf("localstack: migration %q is not named {YYYYMMDDHHMMSS}_{description}.sql", n)
		}
		b, err := fs.ReadFile(fsys, n)
		if err != nil {
			return nil, err
		}
		ms = append(ms, Migration{Version: m[1], Name: m[2], SQL: string(b)})
	}
	return ms, nil
}

// Bootstrap prepares database url (as a superuser): the Supabase stand-ins,
// then every migration not applied yet, each in its own transaction. It
// returns the versions it applied.
func Bootstrap(ctx context.Context, url string, fsys fs.FS) ([]string, error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("localstack: connect: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, supabaseStandIns); err != nil {
		return nil, fmt.Errorf("localstack: supabase roles and auth helpers: %w", err)
	}
	ms, err := ReadMigrations(fsys)
	if err != nil {
		return nil, err
	}
	var applied []string
	for _, m := range ms {
		var done bool
		if err := conn.QueryRow(ctx, `select exists (select 1 from supabase_migrations.schema_migrations where version = $1)`, m.Version).Scan(&done); err != nil {
			return applied, err
		}
		if done {
			continue
		}
		if err := ApplySQL(ctx, conn, m.SQL); err != nil {
			return applied, fmt.Errorf("localstack: migration %s_%s: %w", m.Version, m.Name, err)
		}
		if _, err := conn.Exec(ctx, `insert into supabase_migrations.schema_migrations (version, name) values ($1, $2)`, m.Version, m.Name); err != nil {
			return applied, err
		}
		applied = append(applied, m.Version)
	}
	// PostgREST caches the schema; tell a running one to reload it.
	if len(applied) > 0 {
		_, _ = conn.Exec(ctx, `notify pgrst, 'reload schema'`)
	}
	return applied, nil
}

// ApplySQL runs one file's statements in a transaction. With no arguments pgx
// uses the simple protocol, so a file may hold many statements.
func ApplySQL(ctx context.Context, conn *pgx.Conn, sql string) error {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx) //nolint:errcheck // after Commit this is a no-op
	if _, err := tx.Exec(ctx, sql); err != nil {
		return err
	}
	return tx.Commit(ctx)
}
