-- Documents in GCS, PCN scan jobs and the violations they produce.

create table if not exists public.documents (
  id           uuid primary key default gen_random_uuid(),
  tenant_id    uuid not null references public.tenants (id),
  entity_type  text not null check (entity_type in ('vehicle', 'customer', 'booking', 'incident', 'violation')),
  entity_id    uuid not null,
  doc_type     text not null check (doc_type ~ '^[a-z0-9_]{1,40}$'),
  filename     text not null check (char_length(filename) between 1 and 255),
  content_type text not null,
  size_bytes   bigint not null check (size_bytes > 0),
  object_path  text not null unique,
  status       text not null default 'pending_upload' check (status in ('pending_upload', 'uploaded')),
  uploaded_at  timestamptz,
  created_by   uuid,
  created_at   timestamptz not null default now(),
  updated_at   timestamptz not null default now(),
  archived_at  timestamptz,
  unique (tenant_id, id)
);
create index if not exists documents_entity_idx
  on public.documents (tenant_id, entity_type, entity_id, created_at desc) where archived_at is null;

-- A document points at one of several tables, so no foreign key can carry the
-- tenant; this trigger does: the entity must exist in the document's tenant.
create or replace function public.documents_check_entity() returns trigger
language plpgsql security definer
set search_path = public
as $$
declare
  found boolean;
  tbl text := case new.entity_type
                when 'vehicle' then 'vehicles' when 'customer' then 'customers'
                when 'booking' then 'bookings' when 'incident' then 'incidents'
                when 'violation' then 'violations' end;
begin
  if tbl is null then
    return new; -- the entity_type check constraint rejects the row
  end if;
  execute format('select exists (select 1 from public.%I where id = $1 and tenant_id = $2)',
                 tbl)
    into found using new.entity_id, new.tenant_id;
  if not found then
    raise exception 'document entity % % not found in tenant', new.entity_type, new.entity_id
      using errcode = '23503';
  end if;
  return new;
end
$$;
revoke execute on function public.documents_check_entity() from public, anon, authenticated;

create table if not exists public.pcn_jobs (
  id           uuid primary key default gen_random_uuid(),
  tenant_id    uuid not null references public.tenants (id),
  document_id  uuid not null,
  status       text not null default 'queued' check (status in ('queued', 'processing', 'done', 'needs_attention')),
  attempts     integer not null default 0 check (attempts >= 0),
  -- Bumped each time the job goes back to the queue; names its Cloud Task.
  generation   integer not null default 0 check (generation >= 0),
  reason       text,
  violation_id uuid,
  claimed_at   timestamptz,
  finished_at  timestamptz,
  created_by   uuid,
  created_at   timestamptz not null default now(),
  updated_at   timestamptz not null default now(),
  archived_at  timestamptz,
  unique (tenant_id, id),
  foreign key (tenant_id, document_id) references public.documents (tenant_id, id)
);
-- reset-stuck: jobs left in processing.
create index if not exists pcn_jobs_processing_idx on public.pcn_jobs (claimed_at) where status = 'processing';

create table if not exists public.violations (
  id                        uuid primary key default gen_random_uuid(),
  tenant_id                 uuid not null references public.tenants (id),
  source_job_id             uuid unique,
  document_id               uuid,
  vehicle_id                uuid,
  booking_id                uuid,
  customer_id               uuid,
  pcn_number                text not null check (char_length(pcn_number) between 1 and 40),
  issuing_authority         text not null check (char_length(issuing_authority) between 1 and 200),
  vehicle_registration      text,
  contravened_at            timestamptz,
  contravention_code        text,
  contravention_description text,
  location                  text,
  amount_pence              integer check (amount_pence >= 0),
  discount_amount_pence     integer check (discount_amount_pence >= 0),
  discount_deadline         date,
  notice_date               date,
  match_status              text not null default 'no_vehicle'
                            check (match_status in ('matched', 'no_vehicle', 'no_booking', 'ambiguous', 'not_a_pcn')),
  needs_review              boolean not null default false,
  confidence                jsonb,
  extraction                jsonb,
  status                    text not null default 'open' check (status in ('open', 'transferred', 'paid', 'appealed', 'closed')),
  created_at                timestamptz not null default now(),
  updated_at                timestamptz not null default now(),
  archived_at               timestamptz,
  unique (tenant_id, id),
  unique (tenant_id, issuing_authority, pcn_number),
  foreign key (tenant_id, source_job_id) references public.pcn_jobs (tenant_id, id),
  foreign key (tenant_id, document_id) references public.documents (tenant_id, id),
  foreign key (tenant_id, vehicle_id) references public.vehicles (tenant_id, id),
  foreign key (tenant_id, booking_id) references public.bookings (tenant_id, id),
  foreign key (tenant_id, customer_id) references public.customers (tenant_id, id)
);
create index if not exists violations_vehicle_idx on public.violations (tenant_id, vehicle_id);
create index if not exists violations_customer_idx on public.violations (tenant_id, customer_id);

-- pcn_jobs.violation_id closes the cycle, so it is added once both tables exist.
do $$
begin
  if not exists (select 1 from pg_constraint where conname = 'pcn_jobs_violation_fkey') then
    alter table public.pcn_jobs add constraint pcn_jobs_violation_fkey
      foreign key (tenant_id, violation_id) references public.violations (tenant_id, id);
  end if;
end
$$;

drop trigger if exists documents_check_entity on public.documents;
create trigger documents_check_entity before insert or update of entity_type, entity_id on public.documents
  for each row execute function public.documents_check_entity();

select public.setup_tenant_table('public.documents', false);
select public.setup_tenant_table('public.pcn_jobs', false);
select public.setup_tenant_table('public.violations', true);
