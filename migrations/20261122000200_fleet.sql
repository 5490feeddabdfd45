-- Vehicles, customers and bookings. Every reference carries the tenant
-- (composite foreign keys on (tenant_id, id)), so no row can point at another
-- tenant's row, even when written with the service key.

create table if not exists public.vehicles (
  id                  uuid primary key default gen_random_uuid(),
  tenant_id           uuid not null references public.tenants (id),
  -- Normalised VRM: upper case, no spaces (the gateway normalises before writing).
  registration        text not null check (registration ~ '^[A-Z0-9]{1,8}$'),
  make                text,
  model               text,
  colour              text,
  fuel_type           text,
  year_of_manufacture integer check (year_of_manufacture between 1885 and 2200),
  tax_status          text,
  tax_due_date        date,
  mot_status          text,
  mot_expiry_date     date,
  dvla_checked_at     timestamptz,
  created_at          timestamptz not null default now(),
  updated_at          timestamptz not null default now(),
  archived_at         timestamptz,
  unique (tenant_id, id)
);
-- A registration is unique per tenant among vehicles still in the fleet.
create unique index if not exists vehicles_tenant_registration_key
  on public.vehicles (tenant_id, registration) where archived_at is null;
create index if not exists vehicles_dvla_checked_idx
  on public.vehicles (dvla_checked_at nulls first) where archived_at is null;

create table if not exists public.customers (
  id              uuid primary key default gen_random_uuid(),
  tenant_id       uuid not null references public.tenants (id),
  full_name       text not null check (length(full_name) between 1 and 200),
  email           text check (email is null or length(email) <= 320),
  phone           text check (phone is null or length(phone) <= 40),
  date_of_birth   date,
  licence_number  text check (licence_number is null or length(licence_number) <= 32),
  identity_status text not null default 'unverified'
                  check (identity_status in ('unverified', 'pending', 'passed', 'refer', 'failed', 'expired', 'error')),
  created_at      timestamptz not null default now(),
  updated_at      timestamptz not null default now(),
  archived_at     timestamptz,
  unique (tenant_id, id)
);

create table if not exists public.bookings (
  id          uuid primary key default gen_random_uuid(),
  tenant_id   uuid not null references public.tenants (id),
  vehicle_id  uuid not null,
  customer_id uuid not null,
  starts_at   timestamptz not null,
  ends_at     timestamptz not null,
  status      text not null default 'reserved'
              check (status in ('reserved', 'active', 'completed', 'cancelled')),
  created_at  timestamptz not null default now(),
  updated_at  timestamptz not null default now(),
  archived_at timestamptz,
  unique (tenant_id, id),
  check (ends_at > starts_at),
  foreign key (tenant_id, vehicle_id) references public.vehicles (tenant_id, id),
  foreign key (tenant_id, customer_id) references public.customers (tenant_id, id)
);
-- PCN matching: the tenant's bookings of a vehicle around a moment.
create index if not exists bookings_vehicle_period_idx
  on public.bookings (tenant_id, vehicle_id, starts_at, ends_at) where archived_at is null;
create index if not exists bookings_customer_idx on public.bookings (tenant_id, customer_id);

select public.setup_tenant_table('public.vehicles', true);
select public.setup_tenant_table('public.customers', true);
select public.setup_tenant_table('public.bookings', true);
