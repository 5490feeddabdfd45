-- Indexes behind every list the gateway serves. Lists are newest first with id
-- as the tie-breaker (created_at desc, id desc) and page by keyset, so each
-- index ends with both: a page is then one index range scan starting at the
-- cursor, whatever the depth or the tenant's size. tenant_id comes first (every
-- query carries it) and the indexes are partial on archived_at is null because
-- lists never show archived rows.

-- Each replaces the (tenant_id, created_at desc) index every tenant table
-- gets (setup_tenant_table), which lacks the tie-breaker.
drop index if exists public.incidents_tenant_created_idx;
drop index if exists public.documents_tenant_created_idx;
drop index if exists public.identity_checks_tenant_created_idx;

-- incidents: unfiltered, and each filter of GET /incidents (status, type, vehicle_id).
create index if not exists incidents_list_idx
  on public.incidents (tenant_id, created_at desc, id desc) where archived_at is null;
create index if not exists incidents_status_list_idx
  on public.incidents (tenant_id, status, created_at desc, id desc) where archived_at is null;
create index if not exists incidents_type_list_idx
  on public.incidents (tenant_id, type, created_at desc, id desc) where archived_at is null;
create index if not exists incidents_vehicle_list_idx
  on public.incidents (tenant_id, vehicle_id, created_at desc, id desc) where archived_at is null;
-- The same columns without the tie-breaker: superseded.
drop index if exists public.incidents_status_idx;
drop index if exists public.incidents_type_idx;
drop index if exists public.incidents_vehicle_idx;

-- documents: unfiltered, and GET /documents' filters (entity_type with or
-- without entity_id, entity_id alone, doc_type, status).
create index if not exists documents_list_idx
  on public.documents (tenant_id, created_at desc, id desc) where archived_at is null;
create index if not exists documents_entity_list_idx
  on public.documents (tenant_id, entity_type, entity_id, created_at desc, id desc) where archived_at is null;
create index if not exists documents_entity_id_list_idx
  on public.documents (tenant_id, entity_id, created_at desc, id desc) where archived_at is null;
create index if not exists documents_doc_type_list_idx
  on public.documents (tenant_id, doc_type, created_at desc, id desc) where archived_at is null;
create index if not exists documents_status_list_idx
  on public.documents (tenant_id, status, created_at desc, id desc) where archived_at is null;
drop index if exists public.documents_entity_idx;

-- identity checks: a customer's checks (GET /customers/{id}/identity-checks).
create index if not exists identity_checks_customer_list_idx
  on public.identity_checks (tenant_id, customer_id, created_at desc, id desc) where archived_at is null;
drop index if exists public.identity_checks_customer_idx;
