package dorareceiver

import (
	"errors"
	"fmt"
	"path"
	"strings"
	"time"
	"unicode"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/configoptional"

	"github.com/otelcol-dora/dorareceiver/internal/argorollouts"
	"github.com/otelcol-dora/dorareceiver/internal/engine"
	"github.com/otelcol-dora/dorareceiver/internal/flagger"
	"github.com/otelcol-dora/dorareceiver/internal/k8s"
	"github.com/otelcol-dora/dorareceiver/internal/metadata"
	"github.com/otelcol-dora/dorareceiver/internal/webhook"
)

// Config is the dora receiver's configuration.
type Config struct {
	// Kubernetes enables the Kubernetes source when the key is present.
	Kubernetes configoptional.Optional[k8s.Config] `mapstructure:"kubernetes"`
	// ArgoRollouts and Flagger enable the progressive-delivery sources
	// (Rollout and Canary resources) when their keys are present; they use
	// the kubernetes section's connection and keys (progressive.go).
	ArgoRollouts configoptional.Optional[argorollouts.Config] `mapstructure:"argo_rollouts"`
	Flagger      configoptional.Optional[flagger.Config]      `mapstructure:"flagger"`
	// Webhooks enables the HTTP server for webhooks and CI/CD spans.
	Webhooks configoptional.Optional[WebhooksConfig] `mapstructure:"webhooks"`
	// LeaderElection, when the key is present, elects one of several
	// replicas through a Lease: only the leader opens the storage, watches
	// Kubernetes and emits (leader.go).
	LeaderElection configoptional.Optional[LeaderElectionConfig] `mapstructure:"leader_election"`

	// Mode is standalone (the default: compute the DORA metrics) or agent
	// (forward the cluster's events to a gateway through the logs
	// pipeline; agent.go, docs/agent-gateway.md).
	Mode string `mapstructure:"mode"`

	// Cluster names the Kubernetes cluster this receiver watches: the
	// events of its kubernetes, argo_rollouts and flagger sources carry it
	// and their series get the cluster attribute (and, with
	// semantic_conventions, k8s.cluster.name). Empty (the default): a
	// single-cluster installation, whose series carry no cluster
	// attribute. An agent (docs/agent-gateway.md) sends it with every
	// event it forwards.
	Cluster string `mapstructure:"cluster"`

	// Services maps repositories to the services they deploy (with their
	// team and, in a monorepo, their paths).
	Services []ServiceMapping `mapstructure:"services"`
	// Teams says where the optional team attribute comes from.
	Teams TeamsConfig `mapstructure:"teams"`
	// ProductionEnvironments are the environment names (shell globs) that
	// count as production: only their deployments feed lead time, change
	// failures and recovery time; every environment's deployments are
	// counted with their environment attribute.
	ProductionEnvironments []string `mapstructure:"production_environments"`

	// EmitInterval is how often the whole cumulative state is sent down the
	// pipeline even when nothing changed, so that exporters that expire idle
	// series (the Prometheus exporter after 5 minutes) keep them. Changes
	// are sent as they happen, not on this interval.
	EmitInterval time.Duration `mapstructure:"emit_interval"`

	// LeadTimeBuckets and RecoveryTimeBuckets are the histogram bucket
	// bounds (Go durations, increasing).
	LeadTimeBuckets     []time.Duration `mapstructure:"lead_time_buckets"`
	RecoveryTimeBuckets []time.Duration `mapstructure:"recovery_time_buckets"`

	// IncidentWindow is how long after a deployment an incident on the same
	// service counts as caused by it.
	IncidentWindow time.Duration `mapstructure:"incident_window"`
	// DedupWindow is how long event ids are remembered to drop redeliveries.
	DedupWindow time.Duration `mapstructure:"dedup_window"`
	// PendingChangeMaxAge is how long a commit not yet deployed is
	// remembered (in event time); a deployment of an older one records no
	// lead time from it.
	PendingChangeMaxAge time.Duration `mapstructure:"pending_change_max_age"`

	// MaxLeadTime is the longest lead time recorded; longer ones are
	// counted in platform.lead_time.dropped (reason too_long).
	MaxLeadTime time.Duration `mapstructure:"max_lead_time"`
	// RecoveryOn lists what ends a change failure: deployment (the next
	// successful deployment), rollback (the completed rollback),
	// incident_resolved (the resolution of the incidents it caused). The
	// first of those that happens wins.
	RecoveryOn []string `mapstructure:"recovery_on"`
	// HotfixSignals lists what makes a deployment a hotfix, which fails the
	// deployment it fixes: flag (an event marked hotfix), revert (it ships
	// a revert of a revision an earlier deployment shipped).
	HotfixSignals []string `mapstructure:"hotfix_signals"`
	// RollingWindows are the windows of the platform.dora.* gauges.
	RollingWindows []time.Duration `mapstructure:"rolling_windows"`
	// PerformanceLevels sets the thresholds of platform.dora.level.
	PerformanceLevels PerformanceLevelsConfig `mapstructure:"performance_levels"`
	// Explain sends each production deployment as a trace and a log record
	// to the traces and logs pipelines that use the receiver.
	Explain ExplainConfig `mapstructure:"explain"`

	// Storage is the id of a storage extension (for example
	// file_storage/dora) that keeps the receiver's state across restarts:
	// the counters with their start time, everything the engine correlates
	// later events with, the delivery ids seen and the Kubernetes rollout
	// tracker's state. Not set: the state is in memory only, and the
	// counters restart from zero when the collector restarts.
	Storage *component.ID `mapstructure:"storage"`
	// SnapshotEvery is how many events are logged to the storage between
	// two snapshots of the state (one is also taken at shutdown). Smaller
	// means a shorter replay at start and more writing.
	SnapshotEvery int `mapstructure:"snapshot_every"`

	// Limits bound what one delivery can carry (bounds.go).
	Limits LimitsConfig `mapstructure:"limits"`

	// SemanticConventions, for vendor backends (docs/backends.md): off by
	// default, which keeps the Prometheus contract.
	SemanticConventions SemanticConventionsConfig `mapstructure:"semantic_conventions"`

	// History configures the history import (history.go, docs/history.md).
	History HistoryConfig `mapstructure:"history"`

	metadata.MetricsBuilderConfig `mapstructure:",squash"`

	// prevent unkeyed literal initialization
	_ struct{}
}

// HistoryConfig configures the import of the history that the configured
// sources' systems hold (each source's own history block says whether
// it imports and with which token).
type HistoryConfig struct {
	// Window is how far back an import reads; at most the longest rolling
	// window (older history would be forgotten at once).
	Window time.Duration `mapstructure:"window"`
	// OnStart imports on a first start: when the storage holds no saved
	// state (without storage: at every start). An interrupted import
	// resumes at the next start whatever this says.
	OnStart bool `mapstructure:"on_start"`
	// BatchSize is the most imported events applied in one storage write.
	BatchSize int `mapstructure:"batch_size"`
	// Trigger, when present, serves an authenticated endpoint on the
	// webhook server that starts an import on demand.
	Trigger configoptional.Optional[HistoryTriggerConfig] `mapstructure:"trigger"`
}

// HistoryTriggerConfig is the import-on-demand endpoint: POST to Path with
// the token (Authorization: Bearer <token>) answers 202 when an import
// starts, 409 while one runs.
type HistoryTriggerConfig struct {
	Path                string `mapstructure:"path"`
	webhook.TokenConfig `mapstructure:",squash"`
}

// DefaultHistoryTriggerPath is the trigger's default path.
const DefaultHistoryTriggerPath = "/history/import"

func defaultHistory() HistoryConfig {
	return HistoryConfig{
		Window:    30 * 24 * time.Hour,
		OnStart:   true,
		BatchSize: 500,
		Trigger:   configoptional.Default(HistoryTriggerConfig{Path: DefaultHistoryTriggerPath}),
	}
}

func (h *HistoryConfig) validate(rolling []time.Duration) error {
	var errs []error
	var longest time.Duration
	for _, w := range rolling {
		longest = max(longest, w)
	}
	switch {
	case h.Window <= 0:
		errs = append(errs, fmt.Errorf("history::window: must be positive, got %s", h.Window))
	case longest > 0 && h.Window > longest:
		errs = append(errs, fmt.Errorf("history::window: %s is longer than the longest rolling window (%s): the older history would be forgotten at once; lengthen rolling_windows or shorten the window", h.Window, longest))
	}
	if h.BatchSize <= 0 || h.BatchSize > 10000 {
		errs = append(errs, fmt.Errorf("history::batch_size: must be between 1 and 10000, got %d", h.BatchSize))
	}
	if t := h.Trigger.Get(); t != nil {
		if !strings.HasPrefix(t.Path, "/") {
			errs = append(errs, fmt.Errorf("history::trigger::path: %q must start with /", t.Path))
		}
		if err := t.Check("Authorization: Bearer <token>"); err != nil {
			errs = append(errs, fmt.Errorf("history::trigger::%w", err))
		}
	}
	return errors.Join(errs...)
}

// PerformanceLevelsConfig chooses the tier sets that classify the rolling
// DORA values: a DORA report's table and a custom one.
type PerformanceLevelsConfig struct {
	// Report is the year of the DORA report whose table is used (2023 or
	// 2024); its tier_set is dora-<year>.
	Report int `mapstructure:"report"`
	// Custom is a second tier set, the team's own targets.
	Custom CustomLevelsConfig `mapstructure:"custom"`
	// MinWindowCoverage is the share of a rolling window (0 to 1) that
	// must lie after a service's history start for the window to get
	// levels (platform.dora.window_coverage).
	MinWindowCoverage float64 `mapstructure:"min_window_coverage"`
}

// CustomLevelsConfig is a custom tier set: a level is reached by a value
// strictly better than its threshold; below medium is low.
type CustomLevelsConfig struct {
	// Name is the tier_set attribute.
	Name   string                `mapstructure:"name"`
	Elite  LevelThresholdsConfig `mapstructure:"elite"`
	High   LevelThresholdsConfig `mapstructure:"high"`
	Medium LevelThresholdsConfig `mapstructure:"medium"`
}

// LevelThresholdsConfig holds one level's thresholds.
type LevelThresholdsConfig struct {
	// DeploymentFrequency: more than this many deployments a day.
	DeploymentFrequency float64 `mapstructure:"deployment_frequency"`
	// LeadTime: a median lead time below this.
	LeadTime time.Duration `mapstructure:"lead_time"`
	// ChangeFailureRate: a change failure rate below this ratio (0.05 = 5 %).
	ChangeFailureRate float64 `mapstructure:"change_failure_rate"`
	// RecoveryTime: a median recovery time below this.
	RecoveryTime time.Duration `mapstructure:"recovery_time"`
}

func (l LevelThresholdsConfig) tier() engine.CustomTier {
	return engine.CustomTier{DeploymentsPerDay: l.DeploymentFrequency, LeadTime: l.LeadTime, ChangeFailureRate: l.ChangeFailureRate, RecoveryTime: l.RecoveryTime}
}

func levelThresholds(t engine.CustomTier) LevelThresholdsConfig {
	return LevelThresholdsConfig{DeploymentFrequency: t.DeploymentsPerDay, LeadTime: t.LeadTime, ChangeFailureRate: t.ChangeFailureRate, RecoveryTime: t.RecoveryTime}
}

func defaultPerformanceLevels() PerformanceLevelsConfig {
	elite, high, medium := engine.DefaultCustomTiers()
	return PerformanceLevelsConfig{
		Report: 2024,
		Custom: CustomLevelsConfig{
			Name:   engine.DefaultCustomTierName,
			Elite:  levelThresholds(elite),
			High:   levelThresholds(high),
			Medium: levelThresholds(medium),
		},
		MinWindowCoverage: engine.DefaultConfig().MinWindowCoverage,
	}
}

func createDefaultConfig() *Config {
	ec := engine.DefaultConfig()
	return &Config{
		Kubernetes:             configoptional.Default(k8s.DefaultConfig()),
		ArgoRollouts:           configoptional.Default(argorollouts.Config{}),
		Flagger:                configoptional.Default(flagger.Config{}),
		Mode:                   ModeStandalone,
		Webhooks:               configoptional.Default(defaultWebhooksConfig()),
		LeaderElection:         configoptional.Default(defaultLeaderElectionConfig()),
		ProductionEnvironments: ec.Production,
		EmitInterval:           15 * time.Second,
		LeadTimeBuckets:        seconds(ec.LeadTimeBounds),
		RecoveryTimeBuckets:    seconds(ec.RecoveryTimeBounds),
		IncidentWindow:         ec.IncidentWindow,
		DedupWindow:            ec.DedupWindow,
		PendingChangeMaxAge:    ec.PendingChangeMaxAge,
		MaxLeadTime:            ec.MaxLeadTime,
		RecoveryOn:             []string{engine.RecoverOnDeployment, engine.RecoverOnRollback, engine.RecoverOnIncidentResolved},
		HotfixSignals:          []string{engine.HotfixFlag, engine.HotfixRevert},
		RollingWindows:         ec.RollingWindows,
		PerformanceLevels:      defaultPerformanceLevels(),
		Explain:                ExplainConfig{Traces: true, Logs: true},
		SnapshotEvery:          1000,
		Limits:                 defaultLimitsConfig(),
		History:                defaultHistory(),
		MetricsBuilderConfig:   metadata.NewDefaultMetricsBuilderConfig(),
	}
}

// Validate checks the settings that the nested configs do not check
// themselves. Errors name the key.
func (cfg *Config) Validate() error {
	var errs []error
	if !cfg.Kubernetes.HasValue() && !cfg.Webhooks.HasValue() {
		errs = append(errs, errors.New("no source configured: add a kubernetes or a webhooks section"))
	}
	if err := cfg.validateProgressive(); err != nil {
		errs = append(errs, err)
	}
	if err := validateServices(cfg.Services); err != nil {
		errs = append(errs, err)
	}
	if err := cfg.Teams.validate(); err != nil {
		errs = append(errs, err)
	}
	for i, p := range cfg.ProductionEnvironments {
		if _, err := path.Match(p, ""); err != nil || p == "" {
			errs = append(errs, fmt.Errorf("production_environments[%d]: %q is not a valid glob pattern", i, p))
		}
	}
	if err := cfg.validateMode(); err != nil {
		errs = append(errs, err)
	}
	if err := validClusterName(cfg.Cluster); err != nil {
		errs = append(errs, fmt.Errorf("cluster: %w", err))
	}
	if err := cfg.validateClusterSetting(); err != nil {
		errs = append(errs, err)
	}
	if err := cfg.SemanticConventions.validate(); err != nil {
		errs = append(errs, err)
	}
	if sc := cfg.SemanticConventions.Cluster; sc != "" && cfg.Cluster != "" && sc != cfg.Cluster {
		// One name per cluster: cluster drives both the attribute and
		// k8s.cluster.name.
		errs = append(errs, fmt.Errorf("semantic_conventions::cluster: %q differs from cluster %q; set cluster alone, it also gives k8s.cluster.name", sc, cfg.Cluster))
	}
	if cfg.EmitInterval <= 0 {
		errs = append(errs, fmt.Errorf("emit_interval: must be positive, got %s", cfg.EmitInterval))
	}
	if err := validBuckets(cfg.LeadTimeBuckets); err != nil {
		errs = append(errs, fmt.Errorf("lead_time_buckets: %w", err))
	}
	if err := validBuckets(cfg.RecoveryTimeBuckets); err != nil {
		errs = append(errs, fmt.Errorf("recovery_time_buckets: %w", err))
	}
	if cfg.IncidentWindow <= 0 {
		errs = append(errs, fmt.Errorf("incident_window: must be positive, got %s", cfg.IncidentWindow))
	}
	if cfg.DedupWindow <= 0 {
		errs = append(errs, fmt.Errorf("dedup_window: must be positive, got %s", cfg.DedupWindow))
	}
	if cfg.PendingChangeMaxAge <= 0 {
		errs = append(errs, fmt.Errorf("pending_change_max_age: must be positive, got %s", cfg.PendingChangeMaxAge))
	}
	if cfg.MaxLeadTime <= 0 {
		errs = append(errs, fmt.Errorf("max_lead_time: must be positive, got %s", cfg.MaxLeadTime))
	}
	if len(cfg.RecoveryOn) == 0 {
		errs = append(errs, fmt.Errorf("recovery_on: at least one of %s, %s, %s is required", engine.RecoverOnDeployment, engine.RecoverOnRollback, engine.RecoverOnIncidentResolved))
	}
	for i, n := range cfg.RecoveryOn {
		if _, err := engine.ParseRecoverySignals([]string{n}); err != nil {
			errs = append(errs, fmt.Errorf("recovery_on[%d]: %w", i, err))
		}
	}
	for i, n := range cfg.HotfixSignals {
		if _, err := engine.ParseHotfixSignals([]string{n}); err != nil {
			errs = append(errs, fmt.Errorf("hotfix_signals[%d]: %w", i, err))
		}
	}
	if len(cfg.RollingWindows) == 0 {
		errs = append(errs, errors.New("rolling_windows: at least one window is required"))
	}
	if err := engine.ValidateWindows(cfg.RollingWindows); err != nil {
		errs = append(errs, prefixErrors("rolling_windows", err))
	}
	if err := cfg.PerformanceLevels.validate(); err != nil {
		errs = append(errs, err)
	}
	if err := cfg.validateLeaderElection(); err != nil {
		errs = append(errs, err)
	}
	if cfg.SnapshotEvery <= 0 {
		errs = append(errs, fmt.Errorf("snapshot_every: must be positive, got %d", cfg.SnapshotEvery))
	}
	if err := cfg.Limits.validate(); err != nil {
		errs = append(errs, err)
	}
	if err := cfg.History.validate(cfg.RollingWindows); err != nil {
		errs = append(errs, err)
	}
	if cfg.History.Trigger.HasValue() && !cfg.Webhooks.HasValue() {
		errs = append(errs, errors.New("history::trigger: needs a webhooks section (the trigger is served on the webhook server)"))
	}
	return errors.Join(errs...)
}

func (p *PerformanceLevelsConfig) validate() error {
	var errs []error
	report, err := engine.ReportTierSet(p.Report)
	if err != nil {
		errs = append(errs, fmt.Errorf("performance_levels::report: %w", err))
	}
	c := p.Custom
	switch {
	case c.Name == "":
		errs = append(errs, errors.New("performance_levels::custom::name: must not be empty"))
	case err == nil && c.Name == report.Name:
		errs = append(errs, fmt.Errorf("performance_levels::custom::name: %q is the report's tier set", c.Name))
	}
	if err := engine.ValidateCustomTiers(c.Elite.tier(), c.High.tier(), c.Medium.tier()); err != nil {
		errs = append(errs, prefixErrors("performance_levels::custom::", err))
	}
	if err := engine.ValidateMinWindowCoverage(p.MinWindowCoverage); err != nil {
		errs = append(errs, fmt.Errorf("performance_levels::min_window_coverage: %w", err))
	}
	return errors.Join(errs...)
}

// prefixErrors puts prefix before each of the joined errors in err.
func prefixErrors(prefix string, err error) error {
	var out []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			out = append(out, fmt.Errorf("%s%w", prefix, e))
		}
		return errors.Join(out...)
	}
	return fmt.Errorf("%s%w", prefix, err)
}

func validBuckets(b []time.Duration) error {
	if len(b) == 0 {
		return errors.New("at least one bucket bound is required")
	}
	for i := range b {
		if b[i] <= 0 {
			return fmt.Errorf("bound %s is not positive", b[i])
		}
		if i > 0 && b[i] <= b[i-1] {
			return fmt.Errorf("bounds must increase (%s after %s)", b[i], b[i-1])
		}
	}
	return nil
}

// engineConfig translates the receiver settings into the engine's.
func (cfg *Config) engineConfig() engine.Config {
	ec := engine.DefaultConfig()
	ec.LeadTimeBounds = boundsSeconds(cfg.LeadTimeBuckets)
	ec.RecoveryTimeBounds = boundsSeconds(cfg.RecoveryTimeBuckets)
	ec.IncidentWindow = cfg.IncidentWindow
	ec.DedupWindow = cfg.DedupWindow
	ec.PendingChangeMaxAge = cfg.PendingChangeMaxAge
	ec.Production = cfg.ProductionEnvironments
	ec.MaxLeadTime = cfg.MaxLeadTime
	// Validated: the names are known.
	ec.RecoveryOn, _ = engine.ParseRecoverySignals(cfg.RecoveryOn)
	ec.Hotfix, _ = engine.ParseHotfixSignals(cfg.HotfixSignals)
	ec.RollingWindows = cfg.RollingWindows
	ec.ServicePaths = servicePaths(cfg.Services)
	ec.TierSets = nil
	if report, err := engine.ReportTierSet(cfg.PerformanceLevels.Report); err == nil {
		ec.TierSets = append(ec.TierSets, report)
	}
	c := cfg.PerformanceLevels.Custom
	ec.TierSets = append(ec.TierSets, engine.CustomTierSet(c.Name, c.Elite.tier(), c.High.tier(), c.Medium.tier()))
	ec.MinWindowCoverage = cfg.PerformanceLevels.MinWindowCoverage
	return ec
}

func seconds(b []float64) []time.Duration {
	out := make([]time.Duration, len(b))
	for i, s := range b {
		out[i] = time.Duration(s * float64(time.Second))
	}
	return out
}

func boundsSeconds(b []time.Duration) []float64 {
	out := make([]float64, len(b))
	for i, d := range b {
		out[i] = d.Seconds()
	}
	return out
}

// SemanticConventionsConfig puts the service of every series in OpenTelemetry
// semantic-convention resource attributes, one resource per service, as
// vendor backends key services: service.name (the deployment),
// deployment.environment.name, k8s.namespace.name and k8s.cluster.name
// (Cluster), in place of the namespace, deployment and environment point
// attributes of the Prometheus contract (METRICS.md).
type SemanticConventionsConfig struct {
	Enabled bool `mapstructure:"enabled"`
	// Cluster is the k8s.cluster.name of every resource; empty: none.
	Cluster string `mapstructure:"cluster"`
}

// maxClusterName bounds semantic_conventions::cluster (a DNS name's length).
const maxClusterName = 253

// validClusterName checks a cluster name: bounded like a DNS name, and
// printable (it becomes a label value and part of event identities).
func validClusterName(name string) error {
	if len(name) > maxClusterName {
		return fmt.Errorf("longer than %d bytes", maxClusterName)
	}
	for _, r := range name {
		if !unicode.IsPrint(r) || unicode.IsSpace(r) {
			return fmt.Errorf("%q contains a space or control character", name)
		}
	}
	return nil
}

func (c SemanticConventionsConfig) validate() error {
	if len(c.Cluster) > maxClusterName {
		return fmt.Errorf("semantic_conventions::cluster: longer than %d bytes", maxClusterName)
	}
	if c.Cluster != "" && !c.Enabled {
		return errors.New("semantic_conventions::cluster: set without semantic_conventions::enabled, so it would be ignored")
	}
	return nil
}
