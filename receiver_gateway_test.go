package dorareceiver

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/receiver/receivertest"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/otelcol-dora/dorareceiver/internal/event"
	"github.com/otelcol-dora/dorareceiver/internal/forward"
	"github.com/otelcol-dora/dorareceiver/internal/k8s"
	"github.com/otelcol-dora/dorareceiver/internal/metadata"
)

// agentRollout is a rollout as an agent in cluster forwards it.
func agentRollout(cluster, rev string, at time.Time) []event.Event {
	svc := event.Service{Namespace: "shop", Name: "api", Environment: "production", Cluster: cluster}
	id := "shop/api/" + rev
	return []event.Event{
		{Kind: event.DeploymentStarted, Source: event.SourceKubernetes, ID: id + "/deployment_started", Time: at.Add(-time.Minute), Service: svc, DeploymentID: id, Revision: rev},
		{Kind: event.DeploymentSucceeded, Source: event.SourceKubernetes, ID: id + "/deployment_succeeded", Time: at, Service: svc, DeploymentID: id, Revision: rev},
	}
}

func agentExport(t *testing.T, events []event.Event) []byte {
	t.Helper()
	ld := plog.NewLogs()
	forward.Append(ld, events, time.Now())
	b, err := plogotlp.NewExportRequestFromLogs(ld).MarshalJSON()
	require.NoError(t, err)
	return b
}

// successByCluster is the latest platform.deployments success value of
// shop/api by cluster ("" for none) over every emission.
func successByCluster(next *flakyConsumer) map[string]int64 {
	out := map[string]int64{}
	for _, md := range next.AllMetrics() {
		forEachMetric(md, "platform.deployments", func(m pmetric.Metric) {
			for i := range m.Sum().DataPoints().Len() {
				dp := m.Sum().DataPoints().At(i)
				if s, _ := dp.Attributes().Get("status"); s.Str() != "success" {
					continue
				}
				c, _ := dp.Attributes().Get("cluster")
				out[c.Str()] = dp.IntValue()
			}
		})
	}
	return out
}

// The gateway takes agents' records on /v1/logs, authenticated as the
// otlp source's spans; each cluster's rollouts are its own series; a
// retried export is counted once; a bad record is a 400 naming the field
// and nothing of its export is applied; an unknown schema version is
// refused, naming it.
func TestGatewayTakesAgentRecordsOverHTTP(t *testing.T) {
	next := &flakyConsumer{}
	host := hostWithExtensions{Host: componenttest.NewNopHost(), ext: map[component.ID]component.Component{authID: tokenAuth{token: "ci-token"}}}
	base, err := startWithHost(t, next, host, nil)
	require.NoError(t, err)
	url := base + "/v1/logs"
	now := time.Now().Truncate(time.Second)
	eu := agentExport(t, agentRollout("eu-1", "r1", now.Add(-time.Hour)))

	status, raw := postOTLP(t, url, "", eu)
	assert.Equal(t, http.StatusUnauthorized, status, string(raw))
	status, raw = postOTLP(t, url, "ci-token", eu)
	require.Equal(t, http.StatusOK, status, string(raw))
	status, raw = postOTLP(t, url, "ci-token", eu)
	require.Equal(t, http.StatusOK, status, "a retried export: %s", raw)
	// The same rollout ids from another cluster are other events.
	status, raw = postOTLP(t, url, "ci-token", agentExport(t, agentRollout("us-1", "r1", now.Add(-time.Hour))))
	require.Equal(t, http.StatusOK, status, string(raw))
	require.Eventually(t, func() bool { return len(successByCluster(next)) == 2 }, 5*time.Second, 10*time.Millisecond)
	assert.Equal(t, map[string]int64{"eu-1": 1, "us-1": 1}, successByCluster(next))

	ld := plog.NewLogs()
	forward.Append(ld, agentRollout("ap-1", "r2", now), now)
	ld.ResourceLogs().At(0).ScopeLogs().At(0).LogRecords().At(1).Attributes().PutInt(forward.AttrRevision, 7)
	bad, err := plogotlp.NewExportRequestFromLogs(ld).MarshalJSON()
	require.NoError(t, err)
	status, raw = postOTLP(t, url, "ci-token", bad)
	assert.Equal(t, http.StatusBadRequest, status)
	assert.Contains(t, string(raw), "record 1: dora.revision: must be a str")

	ld.ResourceLogs().At(0).ScopeLogs().At(0).LogRecords().At(1).Attributes().PutInt(forward.AttrSchemaVersion, 9)
	bad, err = plogotlp.NewExportRequestFromLogs(ld).MarshalJSON()
	require.NoError(t, err)
	status, raw = postOTLP(t, url, "ci-token", bad)
	assert.Equal(t, http.StatusBadRequest, status)
	assert.Contains(t, string(raw), "unknown schema version 9")
	time.Sleep(100 * time.Millisecond)
	assert.NotContains(t, successByCluster(next), "ap-1", "nothing of a refused export is applied")
}

// The same on the otlp gRPC server's LogsService: authenticated as the
// spans service is, InvalidArgument with the field for a bad record.
func TestGatewayTakesAgentRecordsOverGRPC(t *testing.T) {
	next := &flakyConsumer{}
	endpoint := freeEndpoint(t)
	host := hostWithExtensions{Host: componenttest.NewNopHost(), ext: map[component.ID]component.Component{authID: tokenAuth{token: "ci-token"}}}
	_, err := startWithHost(t, next, host, func(cfg *Config) {
		cfg.Webhooks.Get().Spans.Get().GRPC.GetOrInsertDefault().NetAddr.Endpoint = endpoint
	})
	require.NoError(t, err)
	conn, err := grpc.NewClient(endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	c := plogotlp.NewGRPCClient(conn)
	export := func(ctx context.Context, events []event.Event, edit func(plog.Logs)) error {
		ld := plog.NewLogs()
		forward.Append(ld, events, time.Now())
		if edit != nil {
			edit(ld)
		}
		_, err := c.Export(ctx, plogotlp.NewExportRequestFromLogs(ld))
		return err
	}
	now := time.Now().Truncate(time.Second)
	err = export(context.Background(), agentRollout("eu-1", "r1", now), nil)
	assert.Equal(t, codes.Unauthenticated, status.Code(err), "%v", err)
	require.NoError(t, export(withToken("ci-token"), agentRollout("eu-1", "r1", now), nil))
	require.NoError(t, export(withToken("ci-token"), agentRollout("eu-1", "r1", now), nil), "a retried export")
	require.Eventually(t, func() bool { return successByCluster(next)["eu-1"] == 1 }, 5*time.Second, 10*time.Millisecond)

	err = export(withToken("ci-token"), agentRollout("eu-1", "r2", now), func(ld plog.Logs) {
		ld.ResourceLogs().At(0).ScopeLogs().At(0).LogRecords().At(0).Attributes().PutStr("dora.flavour", "x")
	})
	st := status.Convert(err)
	require.Equal(t, codes.InvalidArgument, st.Code(), "%v", err)
	assert.Contains(t, st.Message(), "record 0: dora.flavour: unknown attribute")
	var field string
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			field = br.GetFieldViolations()[0].GetField()
		}
	}
	assert.Equal(t, "dora.flavour", field)
	time.Sleep(100 * time.Millisecond)
	assert.Equal(t, map[string]int64{"eu-1": 1}, successByCluster(next))
}

// refusingLogs refuses the first n exports, then keeps the records.
type refusingLogs struct {
	refuse  atomic.Int32
	records atomic.Pointer[[]plog.Logs]
}

func (c *refusingLogs) ConsumeLogs(_ context.Context, ld plog.Logs) error {
	if c.refuse.Add(-1) >= 0 {
		return errors.New("sending queue is full")
	}
	var all []plog.Logs
	if p := c.records.Load(); p != nil {
		all = *p
	}
	all = append(all, ld)
	c.records.Store(&all)
	return nil
}

func (c *refusingLogs) Capabilities() consumer.Capabilities { return consumer.Capabilities{} }

func agentConfig() *Config {
	cfg := createDefaultConfig()
	cfg.Mode = ModeAgent
	cfg.Cluster = "eu-1"
	cfg.Kubernetes = configoptional.Some(k8s.DefaultConfig())
	return cfg
}

// An agent's sink hands each event of its own sources to the logs
// pipeline as a record with the agent's cluster, and returns (so that the
// source saves its state) only once the pipeline accepted it: a refusal
// is retried; a permanent one is dropped; at shutdown it gives up (the
// source derives the event again at its next start).
func TestAgentForwardsOnceAccepted(t *testing.T) {
	cfg := agentConfig()
	require.NoError(t, cfg.Validate())
	r, err := newDoraReceiver(cfg, receivertest.NewNopSettings(metadata.Type), nil)
	require.NoError(t, err)
	logs := &refusingLogs{}
	logs.refuse.Store(2)
	r.nextLogs = logs
	r.closing = make(chan struct{})

	ev := agentRollout("", "r1", time.Now())[1]
	done := make(chan error, 1)
	go func() { done <- r.clusterSink("")(ev) }()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("not accepted after the refusals")
	}
	assert.EqualValues(t, -1, logs.refuse.Load(), "two refusals, then accepted")
	all := *logs.records.Load()
	require.Len(t, all, 1)
	got, err := forward.Decode(all[0], forward.Limits{})
	require.NoError(t, err)
	want := ev
	want.Service.Cluster = "eu-1"
	want.Time = want.Time.UTC().Round(0)
	require.Len(t, got, 1)
	assert.Equal(t, want, got[0], "the event, with the agent's cluster")

	r.nextLogs = consumerFunc(func(context.Context, plog.Logs) error { return consumererror.NewPermanent(errors.New("bad")) })
	assert.NoError(t, r.clusterSink("")(ev), "dropped, not retried forever")

	logs.refuse.Store(1 << 20)
	r.nextLogs = logs
	go func() { done <- r.clusterSink("")(ev) }()
	time.Sleep(200 * time.Millisecond)
	close(r.closing)
	assert.Error(t, <-done, "not taken: the source saves nothing more")
}

type consumerFunc func(context.Context, plog.Logs) error

func (f consumerFunc) ConsumeLogs(ctx context.Context, ld plog.Logs) error { return f(ctx, ld) }
func (consumerFunc) Capabilities() consumer.Capabilities                   { return consumer.Capabilities{} }

func TestAgentConfig(t *testing.T) {
	cfg := agentConfig()
	assert.NoError(t, cfg.Validate())
	cfg.Cluster = ""
	assert.ErrorContains(t, cfg.Validate(), "cluster: required with mode: agent")
	cfg = agentConfig()
	cfg.Kubernetes = configoptional.None[k8s.Config]()
	cfg.Webhooks = configoptional.Some(defaultWebhooksConfig())
	err := cfg.Validate()
	assert.ErrorContains(t, err, "mode: agent needs a kubernetes section")
	assert.ErrorContains(t, err, "webhooks: not served with mode: agent")
	cfg = agentConfig()
	cfg.Mode = "relay"
	assert.ErrorContains(t, cfg.Validate(), `mode: "relay" is neither standalone nor agent`)

	// No logs pipeline: nowhere to send.
	r, err := newDoraReceiver(agentConfig(), receivertest.NewNopSettings(metadata.Type), nil)
	require.NoError(t, err)
	assert.ErrorContains(t, r.checkAgentPipelines(), "list the dora receiver in a logs pipeline")
}
