-- reset-stuck also takes back jobs left in queued (a lost task): find them by age.
create index if not exists pcn_jobs_queued_idx on public.pcn_jobs (updated_at) where status = 'queued';
