// Package tasks queues PCN jobs: on Google Cloud Tasks in production, or in a
// bounded in-process worker pool when there is no Google Cloud project (local
// development), so that the whole flow works on a laptop.
package tasks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	cloudtasks "cloud.google.com/go/cloudtasks/apiv2"
	"cloud.google.com/go/cloudtasks/apiv2/cloudtaskspb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// Job is one PCN job to process.
type Job struct {
	JobID    string `json:"job_id"`
	TenantID string `json:"tenant_id"`
}

// Config of the Cloud Tasks queue.
type Config struct {
	ProjectID string
	Location  string
	Queue     string
	// TargetBaseURL is the gateway's public URL; tasks POST to {base}/internal/jobs/process-pcn.
	TargetBaseURL  string
	InternalSecret string
	// ServiceAccount, when set, makes Cloud Tasks attach an OIDC token for it
	// (for a Cloud Run service that requires authentication).
	ServiceAccount string
	// Timeout bounds each CreateTask call; zero means 10 s.
	Timeout time.Duration
}

// CloudTasks enqueues on a Cloud Tasks queue.
type CloudTasks struct {
	client *cloudtasks.Client
	cfg    Config
}

// NewCloudTasks wraps client (the caller closes it).
func NewCloudTasks(cfg Config, client *cloudtasks.Client) (*CloudTasks, error) {
	if cfg.ProjectID == "" || cfg.Location == "" || cfg.Queue == "" || cfg.TargetBaseURL == "" || cfg.InternalSecret == "" {
		return nil, errors.New("tasks: project, location, queue, target URL and internal secret are required")
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
	req := &cloudtaskspb.HttpRequest{
		Url:        c.cfg.TargetBaseURL + "/internal/jobs/process-pcn",
		HttpMethod: cloudtaskspb.HttpMethod_POST,
		Headers:    map[string]string{"Content-Type": "application/json", "X-Internal-Secret": c.cfg.InternalSecret},
		Body:       body,
	}
	if c.cfg.ServiceAccount != "" {
		req.AuthorizationHeader = &cloudtaskspb.HttpRequest_OidcToken{OidcToken: &cloudtaskspb.OidcToken{
			ServiceAccountEmail: c.cfg.ServiceAccount, Audience: c.cfg.TargetBaseURL}}
	}
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
