package tasks

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	cloudtasks "cloud.google.com/go/cloudtasks/apiv2"
	"cloud.google.com/go/cloudtasks/apiv2/cloudtaskspb"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"strings"

	"github.com/fleetpilot/gateway/gateway/telemetry"
)

// fakeTasks is a Cloud Tasks gRPC server that remembers task names, as the
// real one does, and can be told to fail.
type fakeTasks struct {
	cloudtaskspb.UnimplementedCloudTasksServer
	mu   sync.Mutex
	seen map[string]bool
	reqs []*cloudtaskspb.CreateTaskRequest
	fail error
}

func (f *fakeTasks) CreateTask(_ context.Context, r *cloudtaskspb.CreateTaskRequest) (*cloudtaskspb.Task, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reqs = append(f.reqs, r)
	if f.fail != nil {
		return nil, f.fail
	}
	if f.seen[r.GetTask().GetName()] {
		return nil, status.Error(codes.AlreadyExists, "task exists")
	}
	f.seen[r.GetTask().GetName()] = true
	return r.GetTask(), nil
}

// startFake serves a fake queue; opts are added to the client's.
func startFake(t *testing.T, opts ...option.ClientOption) (*fakeTasks, *cloudtasks.Client) {
	t.Helper()
	f := &fakeTasks{seen: map[string]bool{}}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	cloudtaskspb.RegisterCloudTasksServer(gs, f)
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	c, err := cloudtasks.NewClient(context.Background(), append([]option.ClientOption{option.WithEndpoint(lis.Addr().String()), option.WithoutAuthentication(),
		option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials()))}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return f, c
}

func TestCloudTasksEnqueue(t *testing.T) {
	f, c := startFake(t)
	q, err := NewCloudTasks(Config{ProjectID: "proj", Location: "europe-west2", Queue: "pcn-extract",
		TargetBaseURL: "https://gw.example", InternalSecret: "s3cret", ServiceAccount: "tasks@proj.iam.gserviceaccount.com"}, c)
	if err != nil {
		t.Fatal(err)
	}
	j := Job{JobID: "11111111-0000-4000-8000-000000000001", TenantID: "aaaaaaaa-0000-4000-8000-000000000001"}
	if err := q.Enqueue(context.Background(), j, 0); err != nil {
		t.Fatal(err)
	}
	// The same job and generation again: AlreadyExists is success.
	if err := q.Enqueue(context.Background(), j, 0); err != nil {
		t.Fatalf("duplicate enqueue: %v", err)
	}
	// A new generation is a new task.
	if err := q.Enqueue(context.Background(), j, 1); err != nil {
		t.Fatal(err)
	}
	if len(f.reqs) != 3 || len(f.seen) != 2 {
		t.Fatalf("requests %d, distinct tasks %d", len(f.reqs), len(f.seen))
	}
	r := f.reqs[0]
	const parent = "projects/proj/locations/europe-west2/queues/pcn-extract"
	h := r.GetTask().GetHttpRequest()
	var body Job
	_ = json.Unmarshal(h.GetBody(), &body)
	checks := map[string][2]string{
		"parent":      {r.GetParent(), parent},
		"name":        {r.GetTask().GetName(), parent + "/tasks/pcn-" + j.JobID + "-0"},
		"url":         {h.GetUrl(), "https://gw.example/internal/jobs/process-pcn"},
		"method":      {h.GetHttpMethod().String(), "POST"},
		"secret":      {h.GetHeaders()["X-Internal-Secret"], "s3cret"},
		"type":        {h.GetHeaders()["Content-Type"], "application/json"},
		"body job":    {body.JobID, j.JobID},
		"body tenant": {body.TenantID, j.TenantID},
		"oidc":        {h.GetOidcToken().GetServiceAccountEmail(), "tasks@proj.iam.gserviceaccount.com"},
		"audience":    {h.GetOidcToken().GetAudience(), "https://gw.example"},
		"deadline":    {r.GetTask().GetDispatchDeadline().AsDuration().String(), "5m0s"},
	}
	for k, v := range checks {
		if v[0] != v[1] {
			t.Errorf("%s = %q, want %q", k, v[0], v[1])
		}
	}
	f.fail = status.Error(codes.PermissionDenied, "no")
	if err := q.Enqueue(context.Background(), Job{JobID: "x", TenantID: "y"}, 0); err == nil {
		t.Error("a refused task reported success")
	}
}

func TestLocalRunsRetriesAndDrains(t *testing.T) {
	var runs atomic.Int32
	done := make(chan string, 10)
	l := NewLocal(2, 10, func(ctx context.Context, j Job) error {
		n := runs.Add(1)
		if j.JobID == "flaky" && n < 3 {
			return ErrRetry
		}
		time.Sleep(20 * time.Millisecond)
		done <- j.JobID
		return nil
	}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	l.backoff = time.Millisecond
	for _, id := range []string{"flaky", "a", "b"} {
		if err := l.Enqueue(context.Background(), Job{JobID: id}, 0); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if len(done) != 3 {
		t.Fatalf("%d jobs finished before Close returned, want 3", len(done))
	}
	if err := l.Enqueue(context.Background(), Job{JobID: "late"}, 0); err == nil {
		t.Error("enqueue after Close accepted")
	}
}

func TestLocalFull(t *testing.T) {
	block := make(chan struct{})
	l := NewLocal(1, 1, func(ctx context.Context, j Job) error { <-block; return nil }, slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer func() { close(block); _ = l.Close(context.Background()) }()
	var err error
	for i := 0; i < 5 && err == nil; i++ {
		err = l.Enqueue(context.Background(), Job{JobID: "x"}, 0)
	}
	if !errors.Is(err, ErrFull) {
		t.Fatalf("err = %v, want ErrFull", err)
	}
}

// TestCloudTasksCarriesTrace: the task's HTTP request carries the queuing
// request's traceparent, so its delivery joins that trace; the CreateTask
// call is a client span of that request.
func TestCloudTasksCarriesTrace(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tel, err := telemetry.NewForTest(exp, sdkmetric.NewManualReader())
	if err != nil {
		t.Fatal(err)
	}
	f, c := startFake(t, option.WithGRPCDialOption(grpc.WithChainUnaryInterceptor(tel.UnaryClientInterceptor(telemetry.PeerCloudTasks))))
	q, err := NewCloudTasks(Config{ProjectID: "proj", Location: "europe-west2", Queue: "pcn-extract",
		TargetBaseURL: "https://gw.example", InternalSecret: "s3cret"}, c)
	if err != nil {
		t.Fatal(err)
	}
	ctx, span := tel.Tracer().Start(context.Background(), "POST /violations/scan")
	if err := q.Enqueue(ctx, Job{JobID: "11111111-0000-4000-8000-000000000001", TenantID: "aaaaaaaa-0000-4000-8000-000000000001"}, 0); err != nil {
		t.Fatal(err)
	}
	span.End()
	sc := span.SpanContext()
	tp := f.reqs[0].GetTask().GetHttpRequest().GetHeaders()["traceparent"]
	if !strings.HasPrefix(tp, "00-"+sc.TraceID().String()+"-") {
		t.Errorf("task traceparent %q, want trace %s", tp, sc.TraceID())
	}
	var call tracetest.SpanStub
	for _, s := range exp.GetSpans() {
		if s.Name == "cloudtasks CreateTask" {
			call = s
		}
	}
	if call.Parent.SpanID() != sc.SpanID() {
		t.Errorf("CreateTask span parent %s, want %s (spans %v)", call.Parent.SpanID(), sc.SpanID(), exp.GetSpans())
	}
	for _, a := range call.Attributes {
		if strings.Contains(a.Value.String(), "s3cret") || strings.Contains(a.Value.String(), "11111111") {
			t.Errorf("CreateTask span attribute %s = %s", a.Key, a.Value.String())
		}
	}
}
