package main

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

const (
	deploymentsTotal = "platform_deployments_total"
	leadTimeCount    = "platform_lead_time_seconds_count"
)

// seriesKey names one counter series the soak checks: successful
// deployments or lead times, by namespace and deployment, and by cluster
// (empty for a single cluster and for webhook series, which name none).
type seriesKey struct {
	family     string
	namespace  string
	deployment string
	cluster    string
}

// scrape reads the checked families from a Prometheus text endpoint,
// summing over the labels the key leaves out (for deployments, only
// status="success" is taken).
func scrape(client *http.Client, url string) (map[seriesKey]float64, error) {
	resp, err := client.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	return parseCounters(resp.Body)
}

func parseCounters(r io.Reader) (map[seriesKey]float64, error) {
	out := map[seriesKey]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		name, rest, ok := strings.Cut(line, "{")
		if !ok || (name != deploymentsTotal && name != leadTimeCount) {
			continue
		}
		labelText, valueText, ok := strings.Cut(rest, "} ")
		if !ok {
			return nil, fmt.Errorf("cannot parse %q", line)
		}
		labels := parseLabels(labelText)
		if name == deploymentsTotal && labels["status"] != "success" {
			continue
		}
		f := strings.Fields(valueText)
		if len(f) == 0 {
			return nil, fmt.Errorf("no value in %q", line)
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return nil, fmt.Errorf("value of %q: %w", line, err)
		}
		out[seriesKey{name, labels["namespace"], labels["deployment"], labels["cluster"]}] += v
	}
	return out, sc.Err()
}

// parseLabels reads name="value" pairs; the label values the soak uses
// have no escaped characters.
func parseLabels(s string) map[string]string {
	labels := map[string]string{}
	for s != "" {
		name, rest, ok := strings.Cut(s, `="`)
		if !ok {
			break
		}
		value, rest, _ := strings.Cut(rest, `"`)
		labels[strings.TrimPrefix(name, ",")] = value
		s = strings.TrimPrefix(rest, ",")
	}
	return labels
}

type peak struct {
	replica string
	rss     int64
	starts  int
}

// clusterTally is what one cluster's series (or the series naming no
// cluster: "") were sent and counted.
type clusterTally struct {
	sent, counted, lost, duplicated int
}

type result struct {
	topology                           string // "" (one cluster, two replicas) or topologyAgentGateway
	clusters                           int
	agentRestarts, gatewayRestarts     int
	byCluster                          map[string]*clusterTally
	duration                           time.Duration
	rollouts, hookDeploys, hookCommits int
	redeliveries, retries              int
	restarts, killed, terminated       int
	leaderChanges                      int
	sent, counted, lost, duplicated    int
	mismatches                         []string
	peaks                              []peak
}

// compare fills sent, counted, lost and duplicated, series by series.
func (r *result) compare(want, got map[seriesKey]float64) {
	keys := map[seriesKey]bool{}
	for k := range want {
		keys[k] = true
	}
	for k := range got {
		keys[k] = true
	}
	r.byCluster = map[string]*clusterTally{}
	for k := range keys {
		w, g := int(want[k]), int(got[k])
		c := r.byCluster[k.cluster]
		if c == nil {
			c = &clusterTally{}
			r.byCluster[k.cluster] = c
		}
		r.sent += w
		r.counted += g
		c.sent += w
		c.counted += g
		switch {
		case g < w:
			r.lost += w - g
			c.lost += w - g
		case g > w:
			r.duplicated += g - w
			c.duplicated += g - w
		}
		if g != w {
			r.mismatches = append(r.mismatches, fmt.Sprintf("%s{cluster=%q,namespace=%q,deployment=%q}: sent %d, counted %d", k.family, k.cluster, k.namespace, k.deployment, w, g))
		}
	}
	sort.Strings(r.mismatches)
}

// ok is the verdict: nothing lost or duplicated, and for a full run (10
// minutes or more) at least 5 restarts and a leader change.
func (r *result) ok(asked time.Duration) bool {
	if r.lost != 0 || r.duplicated != 0 || r.sent == 0 {
		return false
	}
	if asked >= 10*time.Minute && (r.restarts < 5 || r.leaderChanges < 1) {
		return false
	}
	return true
}

func (r *result) print(w io.Writer) {
	if r.topology == topologyAgentGateway {
		fmt.Fprintf(w, "\nsoak: %s of load, agent/gateway: %d clusters (real kube-apiservers), one agent each forwarding through otlp_http with a sending_queue on file_storage, 2 gateway replicas with leader election\n", r.duration.Round(time.Second), r.clusters)
	} else {
		fmt.Fprintf(w, "\nsoak: %s of load, 2 replicas with leader election, real kube-apiserver\n", r.duration.Round(time.Second))
	}
	fmt.Fprintf(w, "restarts:        %d (%d SIGKILL, %d SIGTERM)\n", r.restarts, r.killed, r.terminated)
	if r.topology == topologyAgentGateway {
		fmt.Fprintf(w, "                 %d of agents, %d of gateway replicas\n", r.agentRestarts, r.gatewayRestarts)
	}
	fmt.Fprintf(w, "leader changes:  %d\n", r.leaderChanges)
	fmt.Fprintf(w, "events sent:     %d acknowledged (%d Kubernetes rollouts, %d webhook deployments, %d webhook commits)\n",
		r.rollouts+r.hookDeploys+r.hookCommits, r.rollouts, r.hookDeploys, r.hookCommits)
	fmt.Fprintf(w, "                 %d redeliveries of acknowledged events, %d retries after a 503 or no answer\n", r.redeliveries, r.retries)
	fmt.Fprintf(w, "counted:         %d (expected %d: deployments and lead times, by series)\n", r.counted, r.sent)
	fmt.Fprintf(w, "lost:            %d\n", r.lost)
	fmt.Fprintf(w, "duplicated:      %d\n", r.duplicated)
	if r.topology == topologyAgentGateway {
		names := make([]string, 0, len(r.byCluster))
		for c := range r.byCluster {
			names = append(names, c)
		}
		sort.Strings(names)
		for _, c := range names {
			t := r.byCluster[c]
			label := c
			if label == "" {
				label = "(none: webhooks)"
			}
			fmt.Fprintf(w, "cluster %-16s sent %d, counted %d, lost %d, duplicated %d\n", label+":", t.sent, t.counted, t.lost, t.duplicated)
		}
	}
	for _, p := range r.peaks {
		fmt.Fprintf(w, "peak memory:     %s %.1f MiB RSS (high-water mark over %d processes)\n", p.replica, float64(p.rss)/(1<<20), p.starts)
	}
	for _, m := range r.mismatches {
		fmt.Fprintf(w, "MISMATCH %s\n", m)
	}
}
