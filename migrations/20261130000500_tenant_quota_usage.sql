-- Daily allowances per tenant of what costs money or a vendor's shared rate
-- (PCN scans, DVLA lookups, identity check invites). One row per tenant,
-- quota and UTC day, counted by take_quota, so that every gateway instance
-- draws on the same allowance.

create table if not exists public.tenant_quota_usage (
  id          uuid primary key default gen_random_uuid(),
  tenant_id   uuid not null references public.tenants (id),
  quota       text not null check (quota in ('scans', 'dvla_lookups', 'identity_invites')),
  usage_date  date not null,
  used        integer not null default 0 check (used >= 0),
  created_at  timestamptz not null default now(),
  updated_at  timestamptz not null default now(),
  archived_at timestamptz,
  unique (tenant_id, quota, usage_date)
);

select public.setup_tenant_table('public.tenant_quota_usage', false);

-- take_quota counts one use of a tenant's quota on a day and returns the
-- count, or null when quota_limit uses were already counted (nothing
-- changes then). The insert or the conditional update is one statement on
-- the row's unique key: concurrent calls queue on the row lock, and each sees
-- the count the previous one left, so no more than quota_limit ever succeed.
create or replace function public.take_quota(tenant_id uuid, quota text, usage_date date, quota_limit integer)
returns integer
language sql
volatile
set search_path = public
as $$
  insert into public.tenant_quota_usage as u (tenant_id, quota, usage_date, used)
  select $1, $2, $3, 1 where $4 >= 1
  on conflict on constraint tenant_quota_usage_tenant_id_quota_usage_date_key
  do update set used = u.used + 1 where u.used < $4
  returning u.used;
$$;
revoke execute on function public.take_quota(uuid, text, date, integer) from public, anon, authenticated;
grant execute on function public.take_quota(uuid, text, date, integer) to service_role;
