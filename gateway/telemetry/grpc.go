package telemetry

import (
	"context"
	"path"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"google.golang.org/grpc"
	grpccodes "google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// UnaryClientInterceptor makes every unary gRPC call (Cloud Tasks) a client
// span and a metric, and sends traceparent in the call's metadata. The
// request message is not recorded (task bodies hold tenant and job ids).
func (t *Telemetry) UnaryClientInterceptor(peer string) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if t == nil {
			return invoker(ctx, method, req, reply, cc, opts...)
		}
		start := time.Now()
		service, rpc := path.Split(method) // "/google.cloud.tasks.v2.CloudTasks/CreateTask"
		service = strings.Trim(service, "/")
		ctx, span := t.Tracer().Start(ctx, peer+" "+rpc, clientStart...)
		defer span.End()
		if span.IsRecording() {
			span.SetAttributes(attribute.String(AttrPeer, peer), attribute.String("rpc.system", "grpc"),
				attribute.String("rpc.service", service), attribute.String("rpc.method", rpc))
		}
		md, _ := metadata.FromOutgoingContext(ctx)
		md = md.Copy()
		carrier := propagation.HeaderCarrier{}
		t.prop.Inject(ctx, carrier)
		for k, v := range carrier {
			md.Set(k, v...)
		}
		err := invoker(metadata.NewOutgoingContext(ctx, md), method, req, reply, cc, opts...)
		code := status.Code(err)
		span.SetAttributes(attribute.Int("rpc.grpc.status_code", int(code)))
		outcome := grpcOutcome(code)
		if err != nil {
			span.SetStatus(codes.Error, code.String())
		}
		t.metrics.Outbound(ctx, peer, rpc, outcome, time.Since(start))
		return err
	}
}

// grpcOutcome classes a gRPC code like Outcome classes HTTP statuses.
func grpcOutcome(c grpccodes.Code) string {
	switch c {
	case grpccodes.OK:
		return "ok"
	case grpccodes.ResourceExhausted:
		return "throttled"
	case grpccodes.Unavailable, grpccodes.Internal, grpccodes.Unknown, grpccodes.DeadlineExceeded, grpccodes.DataLoss:
		return "server_error"
	case grpccodes.Canceled:
		return "error"
	}
	return "client_error"
}
