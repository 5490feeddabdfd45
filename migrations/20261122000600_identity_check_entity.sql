-- The Credas entity (the person within a process), needed to fetch results
-- and magic links, next to the process id in provider_reference.
alter table public.identity_checks add column if not exists provider_entity_ref text;
