-- Incidents: damage, accidents, thefts and breakdowns of the tenant's vehicles.

create table if not exists public.incidents (
  id          uuid primary key default gen_random_uuid(),
  tenant_id   uuid not null references public.tenants (id),
  vehicle_id  uuid not null,
  booking_id  uuid,
  customer_id uuid,
  occurred_at timestamptz not null,
  type        text not null check (type in ('damage', 'accident', 'theft', 'breakdown', 'other')),
  severity    text not null default 'medium' check (severity in ('low', 'medium', 'high')),
  status      text not null default 'open' check (status in ('open', 'investigating', 'resolved', 'closed')),
  description text not null check (char_length(description) between 1 and 5000),
  location    text check (location is null or char_length(location) <= 500),
  created_at  timestamptz not null default now(),
  updated_at  timestamptz not null default now(),
  archived_at timestamptz,
  unique (tenant_id, id),
  foreign key (tenant_id, vehicle_id) references public.vehicles (tenant_id, id),
  foreign key (tenant_id, booking_id) references public.bookings (tenant_id, id),
  foreign key (tenant_id, customer_id) references public.customers (tenant_id, id)
);
-- The gateway's list filters: status, type, vehicle_id, newest first.
create index if not exists incidents_status_idx
  on public.incidents (tenant_id, status, created_at desc) where archived_at is null;
create index if not exists incidents_type_idx
  on public.incidents (tenant_id, type, created_at desc) where archived_at is null;
create index if not exists incidents_vehicle_idx
  on public.incidents (tenant_id, vehicle_id, created_at desc) where archived_at is null;

select public.setup_tenant_table('public.incidents', true);
