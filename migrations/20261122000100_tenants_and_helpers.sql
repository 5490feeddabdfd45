-- Tenants, and the helpers every tenant table uses.
-- Forward-only and safe to re-run: objects are created only when missing.

create or replace function public.current_tenant_id() returns uuid
language sql stable
set search_path = public
as $$
  -- The tenant of the caller's JWT: the top-level claim set by the custom access
  -- token hook, else app_metadata (never user_metadata: users can edit it).
  select nullif(coalesce(auth.jwt() ->> 'tenant_id',
                         auth.jwt() -> 'app_metadata' ->> 'tenant_id'), '')::uuid
$$;

create or replace function public.set_updated_at() returns trigger
language plpgsql security definer
set search_path = public
as $$
begin
  new.updated_at := now();
  return new;
end
$$;

-- A row never moves between tenants, whoever asks (the service key included).
create or replace function public.prevent_tenant_change() returns trigger
language plpgsql security definer
set search_path = public
as $$
begin
  if new.tenant_id is distinct from old.tenant_id then
    raise exception 'tenant_id cannot change' using errcode = '23514';
  end if;
  return new;
end
$$;

revoke execute on function public.set_updated_at() from public, anon, authenticated;
revoke execute on function public.prevent_tenant_change() from public, anon, authenticated;
grant execute on function public.current_tenant_id() to authenticated, service_role;

create table if not exists public.tenants (
  id          uuid primary key default gen_random_uuid(),
  name        text not null check (length(name) between 1 and 200),
  created_at  timestamptz not null default now(),
  updated_at  timestamptz not null default now(),
  archived_at timestamptz
);

alter table public.tenants enable row level security;
drop policy if exists tenants_own on public.tenants;
create policy tenants_own on public.tenants for select to authenticated
  using (id = (select public.current_tenant_id()));
drop trigger if exists set_updated_at on public.tenants;
create trigger set_updated_at before update on public.tenants
  for each row execute function public.set_updated_at();
grant select, insert, update, delete on table public.tenants to service_role;
grant select on table public.tenants to authenticated;

-- tenant_table(name) gives a tenant table what every one of them needs: the
-- updated_at and tenant-pinning triggers, row-level security with the tenant
-- policy, the grants (new Supabase projects no longer grant new tables by
-- default), and the list index. Idempotent.
create or replace function public.setup_tenant_table(tbl regclass, authenticated_writes boolean)
returns void
language plpgsql
set search_path = public
as $$
declare
  t text := tbl::text;
  n text := replace(tbl::text, 'public.', '');
begin
  execute format('alter table %s enable row level security', t);
  execute format('drop policy if exists tenant_isolation on %s', t);
  execute format('create policy tenant_isolation on %s for all to authenticated
                    using (tenant_id = (select public.current_tenant_id()))
                    with check (tenant_id = (select public.current_tenant_id()))', t);
  execute format('drop trigger if exists set_updated_at on %s', t);
  execute format('create trigger set_updated_at before update on %s
                    for each row execute function public.set_updated_at()', t);
  execute format('drop trigger if exists prevent_tenant_change on %s', t);
  execute format('create trigger prevent_tenant_change before update of tenant_id on %s
                    for each row execute function public.prevent_tenant_change()', t);
  execute format('create index if not exists %I on %s (tenant_id, created_at desc) where archived_at is null',
                 n || '_tenant_created_idx', t);
  execute format('grant select, insert, update, delete on table %s to service_role', t);
  if authenticated_writes then
    execute format('grant select, insert, update, delete on table %s to authenticated', t);
  else
    execute format('grant select on table %s to authenticated', t);
  end if;
end
$$;
revoke execute on function public.setup_tenant_table(regclass, boolean) from public, anon, authenticated;
