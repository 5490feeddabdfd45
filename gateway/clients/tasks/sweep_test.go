package tasks

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"
)

func TestTaskID(t *testing.T) {
	a := TaskID("dvla", "2026-11-30T10:00:00Z", "id-1", "id-2")
	tests := []struct {
		name string
		id   string
		same bool
	}{
		{"same work", TaskID("dvla", "2026-11-30T10:00:00Z", "id-1", "id-2"), true},
		{"other window", TaskID("dvla", "2026-11-30T11:00:00Z", "id-1", "id-2"), false},
		{"other items", TaskID("dvla", "2026-11-30T10:00:00Z", "id-1", "id-3"), false},
		{"keys are not concatenated", TaskID("dvla", "2026-11-30T10:00:00Z", "id-1id-2"), false},
		{"other kind", TaskID("credas", "2026-11-30T10:00:00Z", "id-1", "id-2"), false},
	}
	for _, tc := range tests {
		if (tc.id == a) != tc.same {
			t.Errorf("%s: %s vs %s", tc.name, tc.id, a)
		}
	}
	if len(a) != len("dvla-")+32 {
		t.Errorf("id %q", a)
	}
}

func TestCloudTasksDispatch(t *testing.T) {
	f, c := startFake(t)
	q, err := NewCloudTasks(Config{ProjectID: "proj", Location: "europe-west2", Queue: "pcn-extract",
		TargetBaseURL: "https://gw.example", InternalSecret: "s3cret", ServiceAccount: "tasks@proj.iam.gserviceaccount.com"}, c)
	if err != nil {
		t.Fatal(err)
	}
	task := Task{Queue: "dvla-refresh", ID: "dvla-0123", Path: "/internal/tasks/dvla-refresh", Body: []byte(`{"ids":[]}`), Deadline: 10 * time.Minute}
	for range 2 {
		if err := q.Dispatch(context.Background(), task); err != nil {
			t.Fatal(err)
		}
	}
	if len(f.reqs) != 2 || len(f.seen) != 1 {
		t.Fatalf("requests %d, distinct tasks %d", len(f.reqs), len(f.seen))
	}
	r := f.reqs[0]
	h := r.GetTask().GetHttpRequest()
	const parent = "projects/proj/locations/europe-west2/queues/dvla-refresh"
	for k, v := range map[string][2]string{
		"parent":   {r.GetParent(), parent},
		"name":     {r.GetTask().GetName(), parent + "/tasks/dvla-0123"},
		"url":      {h.GetUrl(), "https://gw.example/internal/tasks/dvla-refresh"},
		"body":     {string(h.GetBody()), `{"ids":[]}`},
		"secret":   {h.GetHeaders()["X-Internal-Secret"], "s3cret"},
		"audience": {h.GetOidcToken().GetAudience(), "https://gw.example"},
		"deadline": {r.GetTask().GetDispatchDeadline().AsDuration().String(), "10m0s"},
	} {
		if v[0] != v[1] {
			t.Errorf("%s = %q, want %q", k, v[0], v[1])
		}
	}
}

func TestPacedRunsEachNameOnceAndRetries(t *testing.T) {
	var mu sync.Mutex
	runs := map[string]int{}
	p := NewPaced(2, 10, func(ctx context.Context, task Task) error {
		mu.Lock()
		defer mu.Unlock()
		runs[task.ID]++
		if task.ID == "flaky" && runs[task.ID] < 3 {
			return errors.New("not yet")
		}
		return nil
	}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	p.backoff = time.Millisecond
	for _, id := range []string{"a", "flaky", "a", "b", "a"} {
		if err := p.Dispatch(context.Background(), Task{ID: id}); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.Idle(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if runs["a"] != 1 || runs["b"] != 1 || runs["flaky"] != 3 {
		t.Errorf("runs %v", runs)
	}
	mu.Unlock()
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.Dispatch(context.Background(), Task{ID: "late"}); err == nil {
		t.Error("dispatch after Close accepted")
	}
}

func TestPacedFull(t *testing.T) {
	block := make(chan struct{})
	p := NewPaced(1, 2, func(ctx context.Context, _ Task) error { <-block; return nil }, slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer func() { close(block); _ = p.Close(context.Background()) }()
	var err error
	for i := 0; i < 5 && err == nil; i++ {
		err = p.Dispatch(context.Background(), Task{ID: string(rune('a' + i))})
	}
	if !errors.Is(err, ErrFull) {
		t.Fatalf("err = %v, want ErrFull", err)
	}
}

// TestCloudTasksOIDCOnly: when the gateway verifies tokens (an audience is
// configured), tasks carry the OIDC token for that audience and no secret.
func TestCloudTasksOIDCOnly(t *testing.T) {
	tests := []struct {
		name   string
		secret string
	}{{"with a secret configured", "s3cret"}, {"without a secret", ""}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, c := startFake(t)
			cfg := Config{ProjectID: "proj", Location: "europe-west2", Queue: "pcn-extract", TargetBaseURL: "https://gw.example", LocalWorkers: 1,
				InternalSecret: tc.secret, ServiceAccount: "tasks@proj.iam.gserviceaccount.com", OIDCAudience: "https://gateway.internal.example"}
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			q, err := NewCloudTasks(cfg, c)
			if err != nil {
				t.Fatal(err)
			}
			if err := q.Enqueue(context.Background(), Job{JobID: "j", TenantID: "t"}, 0); err != nil {
				t.Fatal(err)
			}
			if err := q.Dispatch(context.Background(), Task{Queue: "credas-poll", ID: "credas-1", Path: "/internal/tasks/credas-poll"}); err != nil {
				t.Fatal(err)
			}
			for _, r := range f.reqs {
				h := r.GetTask().GetHttpRequest()
				if _, ok := h.GetHeaders()["X-Internal-Secret"]; ok {
					t.Errorf("%s carries the static secret", h.GetUrl())
				}
				if h.GetOidcToken().GetServiceAccountEmail() != "tasks@proj.iam.gserviceaccount.com" || h.GetOidcToken().GetAudience() != "https://gateway.internal.example" {
					t.Errorf("%s token %v", h.GetUrl(), h.GetOidcToken())
				}
			}
		})
	}
	if err := (Config{ProjectID: "proj", TargetBaseURL: "https://gw.example", LocalWorkers: 1, ServiceAccount: "tasks@proj.iam.gserviceaccount.com"}).Validate(); err == nil {
		t.Error("a service account without the gateway verifying tokens needs the secret")
	}
}
