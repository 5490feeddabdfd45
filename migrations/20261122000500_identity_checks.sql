-- Credas identity checks of customers.

create table if not exists public.identity_checks (
  id                 uuid primary key default gen_random_uuid(),
  tenant_id          uuid not null references public.tenants (id),
  customer_id        uuid not null,
  provider           text not null default 'credas',
  provider_reference text,
  status             text not null default 'invited'
                     check (status in ('invited', 'pending', 'passed', 'refer', 'failed', 'expired', 'error', 'needs_reconcile')),
  -- SHA-256 of the per-check webhook token; the token itself is never stored.
  webhook_token_hash text unique,
  result             jsonb,
  last_checked_at    timestamptz,
  completed_at       timestamptz,
  created_by         uuid,
  created_at         timestamptz not null default now(),
  updated_at         timestamptz not null default now(),
  archived_at        timestamptz,
  unique (tenant_id, id),
  unique (provider, provider_reference),
  foreign key (tenant_id, customer_id) references public.customers (tenant_id, id)
);
create index if not exists identity_checks_customer_idx
  on public.identity_checks (tenant_id, customer_id, created_at desc) where archived_at is null;
-- credas-poll: checks still open.
create index if not exists identity_checks_open_idx
  on public.identity_checks (updated_at) where status in ('invited', 'pending', 'needs_reconcile');

select public.setup_tenant_table('public.identity_checks', false);
