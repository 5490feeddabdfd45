package localstack

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Demo tenants and users of the seeded data.
const (
	DemoTenantA = "a1a1a1a1-0000-4000-8000-00000000000a"
	DemoTenantB = "b2b2b2b2-0000-4000-8000-00000000000b"
	DemoUserA   = "a1a1a1a1-1111-4000-8000-00000000000a"
	DemoUserB   = "b2b2b2b2-1111-4000-8000-00000000000b"
)

// seedSQL is the demo data: two tenants, each with vehicles, customers,
// bookings and incidents. Fixed ids and ON CONFLICT make it idempotent.
const seedSQL = `
insert into public.tenants (id, name) values
  ('` + DemoTenantA + `', 'Acme Car Hire'),
  ('` + DemoTenantB + `', 'Brit Van Rentals')
on conflict (id) do nothing;

insert into public.vehicles (id, tenant_id, registration, make, model, colour, fuel_type, year_of_manufacture) values
  ('a1a1a1a1-2222-4000-8000-000000000001', '` + DemoTenantA + `', 'AB12CDE', 'FORD', 'Fiesta', 'BLUE', 'PETROL', 2021),
  ('a1a1a1a1-2222-4000-8000-000000000002', '` + DemoTenantA + `', 'CD34EFG', 'VAUXHALL', 'Corsa', 'RED', 'ELECTRICITY', 2023),
  ('b2b2b2b2-2222-4000-8000-000000000001', '` + DemoTenantB + `', 'VN70ABC', 'FORD', 'Transit', 'WHITE', 'DIESEL', 2020)
on conflict (id) do nothing;

insert into public.customers (id, tenant_id, full_name, email, phone, date_of_birth, licence_number) values
  ('a1a1a1a1-3333-4000-8000-000000000001', '` + DemoTenantA + `', 'Alice Smith', 'alice@example.com', '+447700900001', '1990-04-01', 'SMITH904010AB9CD'),
  ('a1a1a1a1-3333-4000-8000-000000000002', '` + DemoTenantA + `', 'Bob Jones', 'bob@example.com', '+447700900002', '1985-09-12', 'JONES809125BJ9EF'),
  ('b2b2b2b2-3333-4000-8000-000000000001', '` + DemoTenantB + `', 'Carol White', 'carol@example.com', '+447700900003', '1979-01-30', 'WHITE751309CW9GH')
on conflict (id) do nothing;

insert into public.bookings (id, tenant_id, vehicle_id, customer_id, starts_at, ends_at, status) values
  ('a1a1a1a1-4444-4000-8000-000000000001', '` + DemoTenantA + `', 'a1a1a1a1-2222-4000-8000-000000000001', 'a1a1a1a1-3333-4000-8000-000000000001', '2026-11-01 09:00+00', '2026-11-05 17:00+00', 'completed'),
  ('a1a1a1a1-4444-4000-8000-000000000002', '` + DemoTenantA + `', 'a1a1a1a1-2222-4000-8000-000000000001', 'a1a1a1a1-3333-4000-8000-000000000002', '2026-11-10 09:00+00', '2026-11-20 17:00+00', 'active'),
  ('b2b2b2b2-4444-4000-8000-000000000001', '` + DemoTenantB + `', 'b2b2b2b2-2222-4000-8000-000000000001', 'b2b2b2b2-3333-4000-8000-000000000001', '2026-11-02 08:00+00', '2026-11-09 18:00+00', 'completed')
on conflict (id) do nothing;

insert into public.incidents (id, tenant_id, vehicle_id, booking_id, customer_id, occurred_at, type, severity, status, description, location) values
  ('a1a1a1a1-5555-4000-8000-000000000001', '` + DemoTenantA + `', 'a1a1a1a1-2222-4000-8000-000000000001', 'a1a1a1a1-4444-4000-8000-000000000001', 'a1a1a1a1-3333-4000-8000-000000000001', '2026-11-03 14:20+00', 'damage', 'low', 'open', 'Scratch on the rear bumper found at return', 'Manchester depot'),
  ('a1a1a1a1-5555-4000-8000-000000000002', '` + DemoTenantA + `', 'a1a1a1a1-2222-4000-8000-000000000002', null, null, '2026-11-15 08:05+00', 'breakdown', 'medium', 'investigating', 'Charging fault reported by the hirer', 'M62 J18'),
  ('b2b2b2b2-5555-4000-8000-000000000001', '` + DemoTenantB + `', 'b2b2b2b2-2222-4000-8000-000000000001', 'b2b2b2b2-4444-4000-8000-000000000001', 'b2b2b2b2-3333-4000-8000-000000000001', '2026-11-06 11:00+00', 'accident', 'high', 'open', 'Rear-ended at traffic lights, third party details taken', 'Leeds')
on conflict (id) do nothing;
`

// Seed loads the demo data.
func Seed(ctx context.Context, url string) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	if err := ApplySQL(ctx, conn, seedSQL); err != nil {
		return fmt.Errorf("localstack: demo data: %w", err)
	}
	return nil
}
