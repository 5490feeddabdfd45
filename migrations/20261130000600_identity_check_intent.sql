-- Identity checks record the intent before Credas is called: a check is
-- `creating` until Credas' answer is saved. A retry of the create finds the
-- customer's open check (creating, invited or pending) instead of inviting
-- again, and the poll counts a check left `creating` as unconfirmed.
alter table public.identity_checks drop constraint if exists identity_checks_status_check;
alter table public.identity_checks add constraint identity_checks_status_check
  check (status in ('creating', 'invited', 'pending', 'passed', 'refer', 'failed', 'expired', 'error', 'needs_reconcile'));

-- credas-poll: checks still open, now including those left creating.
drop index if exists public.identity_checks_open_idx;
create index if not exists identity_checks_open_idx
  on public.identity_checks (updated_at) where status in ('creating', 'invited', 'pending', 'needs_reconcile');
