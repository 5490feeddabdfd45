package gcs

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"time"

	"google.golang.org/api/googleapi"
	"google.golang.org/api/iamcredentials/v1"
	"google.golang.org/api/option"

	"github.com/fleetpilot/gateway/gateway/telemetry"
)

// signBlobTries is the retry budget of one IAM signBlob signature. The
// storage library's own signer retries without limit and ignores the
// request's deadline, so an IAM outage would hold every upload-url call; this
// one gives up after a few tries or at the deadline, whichever comes first.
const signBlobTries = 3

// signBlobBackoff is the wait before the second try; it doubles after.
const signBlobBackoff = 200 * time.Millisecond

// iamSigner signs with IAM Credentials signBlob as one service account.
type iamSigner struct {
	svc   *iamcredentials.Service
	name  string
	sleep func(context.Context, time.Duration) error
}

func newIAMSigner(email string, opts []option.ClientOption) (*iamSigner, error) {
	// The context only builds the transport (credentials are found lazily).
	svc, err := iamcredentials.NewService(context.Background(), opts...)
	if err != nil {
		return nil, fmt.Errorf("gcs: iam credentials client: %w", err)
	}
	return &iamSigner{svc: svc, name: "projects/-/serviceAccounts/" + email, sleep: sleepCtx}, nil
}

// signer returns a SignBytes function bound to ctx: every try carries the
// caller's deadline, and the whole signature never outlives it.
func (s *iamSigner) signer(ctx context.Context) func([]byte) ([]byte, error) {
	return func(in []byte) ([]byte, error) {
		req := &iamcredentials.SignBlobRequest{Payload: base64.StdEncoding.EncodeToString(in)}
		wait := signBlobBackoff
		var err error
		for try := 1; ; try++ {
			var resp *iamcredentials.SignBlobResponse
			resp, err = s.svc.Projects.ServiceAccounts.SignBlob(s.name, req).Context(telemetry.WithResend(ctx, try-1)).Do()
			if err == nil {
				out, derr := base64.StdEncoding.DecodeString(resp.SignedBlob)
				if derr != nil {
					return nil, fmt.Errorf("gcs: signBlob answer: %w", derr)
				}
				return out, nil
			}
			if try >= signBlobTries || !transientSignError(err) || ctx.Err() != nil {
				break
			}
			if serr := s.sleep(ctx, wait); serr != nil {
				break
			}
			wait *= 2
		}
		return nil, fmt.Errorf("gcs: signBlob: %w", err)
	}
}

// transientSignError: rate limits, server errors and network failures are
// worth another try; refusals (403 without permission, 404 account) are not.
func transientSignError(err error) bool {
	var ge *googleapi.Error
	if errors.As(err, &ge) {
		return ge.Code == http.StatusTooManyRequests || ge.Code >= 500
	}
	return !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
