package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	mrand "math/rand/v2"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/otelcol-dora/dorareceiver/internal/generic"
	"github.com/otelcol-dora/dorareceiver/internal/localcluster"
	"github.com/otelcol-dora/dorareceiver/internal/webhook"
)

const (
	k8sNamespace   = "soak"
	hookNamespace  = "hooks"
	senderWorkers  = 4
	redeliverShare = 0.05
)

// k8sCluster is one API server the soak rolls out on; name is the
// cluster's name in the series ("" in the single-cluster topology).
type k8sCluster struct {
	name   string
	client kubernetes.Interface
}

// rolloutKey is one Deployment of one cluster.
type rolloutKey struct {
	cluster, deployment string
}

type soak struct {
	o        options
	bin      string
	clusters []k8sCluster
	// replicas are the leader-elected processes that compute the metrics
	// and take webhooks: the two replicas, or the two gateway replicas.
	replicas []*replica
	// agents forward their cluster's events to the gateway (agent-gateway
	// topology only), through gatewayURL: a proxy to the leader.
	agents     []*replica
	gatewayURL string
	http       *http.Client

	mu sync.Mutex
	// What was sent and acknowledged, by series (deployment name).
	rollouts     map[rolloutKey]int // completed rollouts per Deployment
	hookDeploys  map[string]int     // acknowledged deployment deliveries per service
	hookCommits  map[string]int     // commits acknowledged whose deployment was acknowledged too
	acked        [][]byte           // bodies acknowledged, for redeliveries
	redeliveries int
	retries      int // deliveries answered 503 or not at all, then sent again

	restarts        int
	killed          int
	terminated      int
	agentRestarts   int
	gatewayRestarts int
	leaderChanges   atomic.Int64
	leader          atomic.Value // string: name of the replica answering ready
}

func newSoak(o options, bin, dir string, cps []*localcluster.Cluster) (*soak, error) {
	s := &soak{
		o: o, bin: bin,
		http:        &http.Client{Timeout: 30 * time.Second},
		rollouts:    map[rolloutKey]int{},
		hookDeploys: map[string]int{},
		hookCommits: map[string]int{},
	}
	s.leader.Store("")
	stateDir := filepath.Join(dir, "state")
	if o.topology != topologyAgentGateway {
		s.clusters = []k8sCluster{{"", cps[0].Client()}}
		for i := range 2 {
			name := fmt.Sprintf("replica-%d", i)
			r, err := newReplica(name, dir, standaloneConfig(name, cps[0].Kubeconfig, stateDir))
			if err != nil {
				return nil, err
			}
			s.replicas = append(s.replicas, r)
		}
		return s, nil
	}
	// The gateway replicas hold their Lease on the first cluster's API
	// server (the gateway runs in one of the clusters).
	for i := range 2 {
		name := fmt.Sprintf("gateway-%d", i)
		r, err := newReplica(name, dir, gatewayConfig(name, cps[0].Kubeconfig, stateDir))
		if err != nil {
			return nil, err
		}
		s.replicas = append(s.replicas, r)
	}
	port, err := localcluster.FreePort()
	if err != nil {
		return nil, err
	}
	s.gatewayURL = fmt.Sprintf("http://127.0.0.1:%d", port)
	for i, cp := range cps {
		name := fmt.Sprintf("cluster-%d", i)
		s.clusters = append(s.clusters, k8sCluster{name, cp.Client()})
		r, err := newReplica("agent-"+name, dir, agentConfig(name, cp.Kubeconfig, s.gatewayURL, filepath.Join(dir, "agent-"+name+"-state")))
		if err != nil {
			return nil, err
		}
		s.agents = append(s.agents, r)
	}
	return s, nil
}

func (s *soak) stopReplicas() {
	for _, r := range s.agents {
		r.stop(syscall.SIGTERM)
	}
	for _, r := range s.replicas {
		r.stop(syscall.SIGTERM)
	}
}

func (s *soak) run(ctx context.Context) (*result, error) {
	if err := s.createDeployments(ctx); err != nil {
		return nil, err
	}
	for _, r := range s.replicas {
		if err := r.start(s.bin); err != nil {
			return nil, err
		}
	}
	if _, err := s.waitLeader(ctx, 60*time.Second); err != nil {
		return nil, err
	}
	if s.gatewayURL != "" {
		stopProxy, err := s.serveGatewayProxy()
		if err != nil {
			return nil, err
		}
		defer stopProxy()
		for _, a := range s.agents {
			if err := a.start(s.bin); err != nil {
				return nil, err
			}
		}
	}
	began := time.Now()
	log.Printf("soak: %s of load on 2 replicas (leader %s), %d agents", s.o.duration, s.leader.Load(), len(s.agents))

	loadCtx, stopLoad := context.WithTimeout(ctx, s.o.duration)
	defer stopLoad()
	var wg sync.WaitGroup
	errs := make(chan error, senderWorkers+3)
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	go s.watchLeader(watchCtx)
	go s.sampleMemory(watchCtx)

	perWorker := s.o.webhookRate / senderWorkers
	for w := range senderWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.sendWebhooks(loadCtx, w, perWorker); err != nil {
				errs <- err
				stopLoad()
			}
		}()
	}
	var rollWG sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := s.rollOut(loadCtx, &rollWG); err != nil {
			errs <- err
			stopLoad()
		}
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := s.restartReplicas(loadCtx); err != nil {
			errs <- err
			stopLoad()
		}
	}()
	wg.Wait()
	rollWG.Wait()
	close(errs)
	for err := range errs {
		return nil, err
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	log.Printf("soak: load stopped after %s; waiting for the counters", time.Since(began).Round(time.Second))

	res := &result{duration: time.Since(began), topology: s.o.topology, clusters: len(s.agents)}
	// Every replica is up again at the end; the leader's endpoint must
	// converge on what was sent.
	counted, err := s.converge(ctx, 90*time.Second)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	res.compare(s.expected(), counted)
	res.rollouts = sum(s.rollouts)
	res.hookDeploys = sum(s.hookDeploys)
	res.hookCommits = sum(s.hookCommits)
	res.redeliveries, res.retries = s.redeliveries, s.retries
	res.restarts, res.killed, res.terminated = s.restarts, s.killed, s.terminated
	res.agentRestarts, res.gatewayRestarts = s.agentRestarts, s.gatewayRestarts
	res.leaderChanges = int(s.leaderChanges.Load())
	for _, r := range append(append([]*replica{}, s.replicas...), s.agents...) {
		r.sampleRSS()
		res.peaks = append(res.peaks, peak{r.name, r.peakRSS, r.starts})
	}
	return res, nil
}

// createDeployments creates the Deployments in every cluster and waits
// until each is rolled out, before any collector starts: their first
// rollout is history, not a deployment to count.
func (s *soak) createDeployments(ctx context.Context) error {
	for _, c := range s.clusters {
		if _, err := c.client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: k8sNamespace}}, metav1.CreateOptions{}); err != nil {
			return err
		}
		for i := range s.o.deployments {
			name := fmt.Sprintf("app-%d", i)
			one := int32(1)
			d := &appsv1.Deployment{
				ObjectMeta: metav1.ObjectMeta{Name: name},
				Spec: appsv1.DeploymentSpec{
					Replicas: &one,
					Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
					Template: corev1.PodTemplateSpec{
						ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}},
						Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.local/" + name + ":0"}}},
					},
				},
			}
			if _, err := c.client.AppsV1().Deployments(k8sNamespace).Create(ctx, d, metav1.CreateOptions{}); err != nil {
				return err
			}
			s.rollouts[rolloutKey{c.name, name}] = 0
		}
	}
	for _, c := range s.clusters {
		for i := range s.o.deployments {
			if err := waitRolledOut(ctx, c.client, fmt.Sprintf("app-%d", i), 2*time.Minute); err != nil {
				return err
			}
		}
	}
	return nil
}

// rollOut changes one Deployment's image every rolloutEvery, in turn over
// the clusters and their Deployments, and counts each rollout once the
// Deployment reports it complete. A Deployment is not changed again while
// its rollout is in flight.
func (s *soak) rollOut(ctx context.Context, wg *sync.WaitGroup) error {
	inFlight := map[rolloutKey]bool{}
	var mu sync.Mutex
	version := 0
	tick := time.NewTicker(s.o.rolloutEvery)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		c := s.clusters[i%len(s.clusters)]
		name := fmt.Sprintf("app-%d", (i/len(s.clusters))%s.o.deployments)
		key := rolloutKey{c.name, name}
		mu.Lock()
		busy := inFlight[key]
		mu.Unlock()
		if busy {
			continue
		}
		version++
		image := fmt.Sprintf("registry.local/%s:%d", name, version)
		uctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		d, err := c.client.AppsV1().Deployments(k8sNamespace).Get(uctx, name, metav1.GetOptions{})
		if err == nil {
			d.Spec.Template.Spec.Containers[0].Image = image
			_, err = c.client.AppsV1().Deployments(k8sNamespace).Update(uctx, d, metav1.UpdateOptions{})
		}
		cancel()
		if err != nil {
			return fmt.Errorf("rolling out %s %s: %w", c.name, name, err)
		}
		mu.Lock()
		inFlight[key] = true
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			// The rollout is followed to its end even after the load stops.
			if err := waitRolledOut(context.Background(), c.client, name, 3*time.Minute); err != nil {
				log.Printf("soak: %s: %v", c.name, err)
				return
			}
			s.mu.Lock()
			s.rollouts[key]++
			s.mu.Unlock()
			mu.Lock()
			delete(inFlight, key)
			mu.Unlock()
		}()
	}
}

func waitRolledOut(ctx context.Context, client kubernetes.Interface, name string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		d, err := client.AppsV1().Deployments(k8sNamespace).Get(ctx, name, metav1.GetOptions{})
		if err == nil && rolledOut(d) {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("deployment %s/%s not rolled out within %s", k8sNamespace, name, timeout)
}

func rolledOut(d *appsv1.Deployment) bool {
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	st := d.Status
	if st.ObservedGeneration < d.Generation || st.UpdatedReplicas != want || st.AvailableReplicas != want || st.Replicas != want {
		return false
	}
	for _, c := range st.Conditions {
		if c.Type == appsv1.DeploymentProgressing {
			return c.Status == corev1.ConditionTrue && c.Reason == "NewReplicaSetAvailable"
		}
	}
	return false
}

// sendWebhooks sends, at about rate per second, a commit and then a
// deployment that ships it, for a random service; each is sent until it is
// acknowledged (2xx), as a sender that retries does. A few acknowledged
// deliveries are sent again: redeliveries must not count.
func (s *soak) sendWebhooks(ctx context.Context, worker int, rate float64) error {
	interval := time.Duration(float64(time.Second) / rate * 2) // two deliveries per pair
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		service := fmt.Sprintf("svc-%d", mrand.IntN(s.o.services))
		rev := randomSHA()
		now := time.Now().UTC().Truncate(time.Millisecond)
		commit := generic.Payload{
			Type: "change", ID: fmt.Sprintf("commit-%d-%d-%s", worker, n, rev[:8]), Time: now.Add(-10 * time.Minute),
			Service: service, Namespace: hookNamespace, Environment: "production",
			Repository: "acme/" + service, Revision: rev, CommitTime: now.Add(-10 * time.Minute),
		}
		deploy := generic.Payload{
			Type: "deployment", Status: "success", ID: fmt.Sprintf("deploy-%d-%d-%s", worker, n, rev[:8]), Time: now,
			Service: service, Namespace: hookNamespace, Environment: "production",
			Repository: "acme/" + service, DeploymentID: fmt.Sprintf("dep-%d-%d-%s", worker, n, rev[:8]), Revision: rev,
		}
		cb, err := json.Marshal(commit)
		if err != nil {
			return err
		}
		db, err := json.Marshal(deploy)
		if err != nil {
			return err
		}
		// Stop between the two only if the soak is being interrupted: the
		// commit alone is a pending change and counts nothing.
		if err := s.deliver(ctx, cb); err != nil {
			return ignoreDone(ctx, err)
		}
		if err := s.deliver(ctx, db); err != nil {
			return ignoreDone(ctx, err)
		}
		s.mu.Lock()
		s.hookDeploys[service]++
		s.hookCommits[service]++
		s.acked = append(s.acked, cb, db)
		var again []byte
		if mrand.Float64() < redeliverShare {
			again = s.acked[mrand.IntN(len(s.acked))]
			s.redeliveries++
		}
		s.mu.Unlock()
		if again != nil {
			if err := s.deliver(ctx, again); err != nil {
				return ignoreDone(ctx, err)
			}
		}
	}
}

// deliver posts body to the leader (as far as it is known) until a 2xx
// answer; 503 and connection errors are retried on the other replica
// after a pause, as webhook senders with retries do. Any other answer is
// an error of the soak itself.
func (s *soak) deliver(ctx context.Context, body []byte) error {
	sig := "sha256=" + webhook.SignHMACSHA256(webhookSecret, body)
	i := s.leaderIndex()
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			// A delivery begun before the load's time ran out is finished;
			// only an interrupted soak gives up on it.
			if errors.Is(ctx.Err(), context.Canceled) {
				return ctx.Err()
			}
			s.mu.Lock()
			s.retries++
			s.mu.Unlock()
			time.Sleep(200 * time.Millisecond)
			i = (i + 1) % len(s.replicas)
		}
		if attempt > 3000 {
			return fmt.Errorf("delivery not acknowledged after %d attempts", attempt)
		}
		req, err := http.NewRequest(http.MethodPost, s.replicas[i].webhook+"/events", bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(generic.SignatureHeader, sig)
		resp, err := s.http.Do(req)
		if err != nil {
			continue
		}
		answer, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch {
		case resp.StatusCode/100 == 2:
			return nil
		case resp.StatusCode == http.StatusServiceUnavailable:
			continue
		default:
			return fmt.Errorf("delivery answered %d: %s", resp.StatusCode, answer)
		}
	}
}

func ignoreDone(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return err
}

func (s *soak) leaderIndex() int {
	name, _ := s.leader.Load().(string)
	for i, r := range s.replicas {
		if r.name == name {
			return i
		}
	}
	return 0
}

// restartReplicas stops a process every restartEvery and starts it again:
// the leader and the follower in turn (a leader stopped is a leader
// change), with SIGKILL twice for every SIGTERM. With agents, every other
// restart is an agent's, in turn over the clusters.
func (s *soak) restartReplicas(ctx context.Context) error {
	tick := time.NewTicker(s.o.restartEvery)
	defer tick.Stop()
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		target, role, sig := s.restartTarget(n)
		log.Printf("soak: restart %d: %s to %s (%s)", n+1, sig, target.name, role)
		target.stop(sig)
		s.mu.Lock()
		s.restarts++
		if sig == syscall.SIGKILL {
			s.killed++
		} else {
			s.terminated++
		}
		if role == "agent" {
			s.agentRestarts++
		} else {
			s.gatewayRestarts++
		}
		s.mu.Unlock()
		// A stopped leader stays down longer than its lease, so that the
		// follower takes over (a leader back within its lease renews it
		// under the same identity); a follower comes back at once; an
		// agent stays down a few seconds, while rollouts go on.
		pause := time.Second
		switch role {
		case "leader":
			pause = leaseDuration + 2*time.Second
		case "agent":
			pause = 3 * time.Second
		}
		time.Sleep(pause)
		if err := target.start(s.bin); err != nil {
			return err
		}
	}
}

// restartTarget is the n-th restart's process, its role (leader, follower
// or agent) and signal.
func (s *soak) restartTarget(n int) (*replica, string, syscall.Signal) {
	sig := syscall.SIGKILL
	if n%3 == 2 {
		sig = syscall.SIGTERM
	}
	m := n
	if len(s.agents) > 0 {
		if n%2 == 0 {
			return s.agents[(n/2)%len(s.agents)], "agent", sig
		}
		m = n / 2
	}
	li := s.leaderIndex()
	if m%2 == 1 {
		return s.replicas[(li+1)%len(s.replicas)], "follower", sig
	}
	return s.replicas[li], "leader", sig
}

// watchLeader follows which replica answers ready and counts the changes.
func (s *soak) watchLeader(ctx context.Context) {
	client := &http.Client{Timeout: 2 * time.Second}
	for ctx.Err() == nil {
		for _, r := range s.replicas {
			if r.ready(client) {
				if old := s.leader.Swap(r.name); old != r.name {
					s.leaderChanges.Add(1)
					log.Printf("soak: leader is now %s (was %q)", r.name, old)
				}
				break
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func (s *soak) waitLeader(ctx context.Context, timeout time.Duration) (*replica, error) {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		for _, r := range s.replicas {
			if r.ready(client) {
				s.leader.Store(r.name)
				return r, nil
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	return nil, fmt.Errorf("no replica became leader within %s", timeout)
}

func (s *soak) sampleMemory(ctx context.Context) {
	for ctx.Err() == nil {
		for _, r := range s.replicas {
			r.sampleRSS()
		}
		time.Sleep(time.Second)
	}
}

// expected is what the leader's endpoint must show, by series key.
func (s *soak) expected() map[seriesKey]float64 {
	want := map[seriesKey]float64{}
	for k, n := range s.rollouts {
		want[seriesKey{deploymentsTotal, k8sNamespace, k.deployment, k.cluster}] = float64(n)
	}
	for name, n := range s.hookDeploys {
		want[seriesKey{deploymentsTotal, hookNamespace, name, ""}] = float64(n)
	}
	// Every pair's commit was pushed before its deployment, so each records
	// a lead time, the service's first deployment's too (METRICS.md).
	for name, n := range s.hookCommits {
		if n > 0 {
			want[seriesKey{leadTimeCount, hookNamespace, name, ""}] = float64(n)
		}
	}
	return want
}

// converge scrapes the leader until its counters equal the expected ones
// or timeout passes, and returns the last scrape.
func (s *soak) converge(ctx context.Context, timeout time.Duration) (map[seriesKey]float64, error) {
	s.mu.Lock()
	want := s.expected()
	s.mu.Unlock()
	deadline := time.Now().Add(timeout)
	var last map[seriesKey]float64
	var lastErr error
	for time.Now().Before(deadline) && ctx.Err() == nil {
		r, err := s.waitLeader(ctx, 30*time.Second)
		if err != nil {
			return nil, err
		}
		got, err := scrape(s.http, r.metrics)
		if err == nil {
			last, lastErr = got, nil
			if equal(want, got) {
				return got, nil
			}
		} else {
			lastErr = err
		}
		time.Sleep(time.Second)
	}
	if last == nil {
		return nil, fmt.Errorf("no scrape of the leader's endpoint succeeded: %v", lastErr)
	}
	return last, nil
}

func equal(want, got map[seriesKey]float64) bool {
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	for k, v := range got {
		if _, ok := want[k]; !ok && v != 0 {
			return false
		}
	}
	return true
}

func randomSHA() string {
	b := make([]byte, 20)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func sum[K comparable](m map[K]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}
