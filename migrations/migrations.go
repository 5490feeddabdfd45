// Package migrations holds the database schema as forward-only SQL files named
// {YYYYMMDDHHMMSS}_{description}.sql, applied in name order: by `supabase db
// push` in production, and by supabase/localstack for the local stack and tests.
package migrations

import "embed"

// Files are the migration files, embedded so that tests and the local stack
// apply exactly the bytes production gets.
//
//go:embed *.sql
var Files embed.FS
