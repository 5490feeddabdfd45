// Package tasks queues PCN jobs: on Google Cloud Tasks in production, or in a
// bounded in-process worker pool when there is no Google Cloud project (local
// development), so that the whole flow works on a laptop.
package tasks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"time"

	cloudtasks "cloud.google.com/go/cloudtasks/apiv2"
	"cloud.google.com/go/cloudtasks/apiv2/cloudtaskspb"
	"go.opentelemetry.io/otel/propagation"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// Job is one PCN job to process.
type Job struct {
	JobID    string `json:"job_id"`
	TenantID string `json:"tenant_id"`
}

// Config of the Cloud Tasks queue. Its variables carry no common prefix
// (GCP_PROJECT_ID and INTERNAL_SECRET are also read by the HTTP edge), so the
// env tags are full names.
type Config struct {
	// ProjectID selects Cloud Tasks; empty runs jobs in-process (LocalWorkers).
	ProjectID string `env:"GCP_PROJECT_ID"`
	Location  string `env:"TASKS_LOCATION" envDefault:"europe-west2"`
	Queue     string `env:"TASKS_QUEUE" envDefault:"pcn-extract"`
	// TargetBaseURL is the gateway's public URL; tasks POST to {base}/internal/jobs/process-pcn.
	TargetBaseURL  string `env:"TASKS_TARGET_BASE_URL"`
	InternalSecret string `env:"INTERNAL_SECRET"`
	// ServiceAccount, when set, makes Cloud Tasks attach a Google-signed
	// OIDC token for it, which the gateway (INTERNAL_OIDC_*) and a private
	// Cloud Run service verify.
	ServiceAccount string `env:"TASKS_SERVICE_ACCOUNT"`
	// OIDCAudience is the token's audience, the one the gateway checks
	// (empty: TargetBaseURL). When set with ServiceAccount the gateway
	// verifies tokens, so the static secret is not put into tasks at all.
	OIDCAudience string `env:"INTERNAL_OIDC_AUDIENCE"`
	// LocalWorkers run jobs in-process when ProjectID is empty.
	LocalWorkers int `env:"LOCAL_TASK_WORKERS" envDefault:"2"`
	// Timeout bounds each CreateTask call; zero means 10 s.
	Timeout time.Duration
}

// CloudTasks enqueues on a Cloud Tasks queue.
type CloudTasks struct {
	client *cloudtasks.Client
	cfg    Config
}

// Validate names each bad setting, one error per variable.
func (c Config) Validate() error {
	var p []error
	if c.ProjectID != "" {
		if u, err := url.Parse(c.TargetBaseURL); c.TargetBaseURL == "" || err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			p = append(p, errors.New("TASKS_TARGET_BASE_URL: required with GCP_PROJECT_ID: the gateway's public URL, such as https://gateway-xyz.a.run.app"))
		}
		if c.InternalSecret == "" && !c.oidc() {
			p = append(p, errors.New("INTERNAL_SECRET: required with GCP_PROJECT_ID unless TASKS_SERVICE_ACCOUNT and INTERNAL_OIDC_AUDIENCE are set (Cloud Tasks sends it)"))
		}
	}
	if c.LocalWorkers < 1 || c.LocalWorkers > 64 {
		p = append(p, errors.New("LOCAL_TASK_WORKERS: must be between 1 and 64"))
	}
	return errors.Join(p...)
}

// oidc reports whether tasks carry a token the gateway itself verifies.
func (c Config) oidc() bool { return c.ServiceAccount != "" && c.OIDCAudience != "" }

// httpRequest is a POST of body to the gateway's path, authenticated by an
// OIDC token for ServiceAccount when set, and by the static secret unless
// the gateway verifies the token (the secret then stays out of every task).
func (c Config) httpRequest(path string, body []byte) *cloudtaskspb.HttpRequest {
	req := &cloudtaskspb.HttpRequest{
		Url:        c.TargetBaseURL + path,
		HttpMethod: cloudtaskspb.HttpMethod_POST,
		Headers:    map[string]string{"Content-Type": "application/json"},
		Body:       body,
	}
	if !c.oidc() {
		req.Headers["X-Internal-Secret"] = c.InternalSecret
	}
	if c.ServiceAccount != "" {
		aud := c.OIDCAudience
		if aud == "" {
			aud = c.TargetBaseURL
		}
		req.AuthorizationHeader = &cloudtaskspb.HttpRequest_OidcToken{OidcToken: &cloudtaskspb.OidcToken{
			ServiceAccountEmail: c.ServiceAccount, Audience: aud}}
	}
	return req
}

// NewCloudTasks wraps client (the caller closes it).
func NewCloudTasks(cfg Config, client *cloudtasks.Client) (*CloudTasks, error) {
	if cfg.ProjectID == "" || cfg.Location == "" || cfg.Queue == "" || cfg.TargetBaseURL == "" || (cfg.InternalSecret == "" && !cfg.oidc()) {
		return nil, errors.New("tasks: project, location, queue, target URL and an internal secret or OIDC identity are required")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	return &CloudTasks{client: client, cfg: cfg}, nil
}

// QueuePath is projects/P/locations/L/queues/Q.
func (c *CloudTasks) QueuePath() string {
	return fmt.Sprintf("projects/%s/locations/%s/queues/%s", c.cfg.ProjectID, c.cfg.Location, c.cfg.Queue)
}

// Enqueue creates the task for j. The task is named after the job (plus its
// attempt generation), so enqueueing the same job twice is harmless:
// AlreadyExists counts as success.
func (c *CloudTasks) Enqueue(ctx context.Context, j Job, generation int) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	body, _ := json.Marshal(j)
	req := c.cfg.httpRequest("/internal/jobs/process-pcn", body)
	// traceparent: the delivery's server span joins the trace of the request
	// that queued the job.
	propagation.TraceContext{}.Inject(ctx, propagation.MapCarrier(req.Headers))
	_, err := c.client.CreateTask(ctx, &cloudtaskspb.CreateTaskRequest{
		Parent: c.QueuePath(),
		Task: &cloudtaskspb.Task{
			Name:             TaskName(c.QueuePath(), j.JobID, generation),
			DispatchDeadline: durationpb.New(5 * time.Minute),
			MessageType:      &cloudtaskspb.Task_HttpRequest{HttpRequest: req},
		},
	})
	if status.Code(err) == codes.AlreadyExists {
		return nil
	}
	if err != nil {
		return fmt.Errorf("tasks: create task for job %s: %w", j.JobID, err)
	}
	return nil
}

// TaskName names a job's task. A job id is a random UUID, which spreads task
// names as Cloud Tasks recommends; the generation lets a job that went back
// to the queue (reset-stuck, retry) get a new task, since Cloud Tasks keeps a
// name reserved for a while after its task ran.
func TaskName(queuePath, jobID string, generation int) string {
	return fmt.Sprintf("%s/tasks/pcn-%s-%d", queuePath, jobID, generation)
}
