-- Idempotency keys of creating POSTs: the first answer of a (tenant, key) is
-- kept for 24 hours and replayed to retries with the same request.

create table if not exists public.idempotency_keys (
  id              uuid primary key default gen_random_uuid(),
  tenant_id       uuid not null references public.tenants (id),
  key             text not null check (char_length(key) between 1 and 255),
  -- SHA-256 of method, path and body: a retry must be the same request.
  fingerprint     text not null check (fingerprint ~ '^[0-9a-f]{64}$'),
  status          text not null default 'in_flight' check (status in ('in_flight', 'done')),
  response_status integer check (response_status between 200 and 299),
  response_type   text,
  response_body   text,
  expires_at      timestamptz not null default now() + interval '24 hours',
  created_at      timestamptz not null default now(),
  updated_at      timestamptz not null default now(),
  archived_at     timestamptz,
  unique (tenant_id, key),
  check (status = 'in_flight' or (response_status is not null and response_body is not null))
);
-- The sweep deletes expired keys of every tenant.
create index if not exists idempotency_keys_expires_idx on public.idempotency_keys (expires_at);

select public.setup_tenant_table('public.idempotency_keys', false);
