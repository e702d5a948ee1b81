package engine

import (
	"errors"
	"fmt"
	"time"
)

// Level is a DORA performance level; higher is better. Its numeric value is
// the value of the platform.dora.level gauge.
type Level int

// The performance levels.
const (
	LevelLow    Level = 1
	LevelMedium Level = 2
	LevelHigh   Level = 3
	LevelElite  Level = 4
)

func (l Level) String() string {
	switch l {
	case LevelElite:
		return "elite"
	case LevelHigh:
		return "high"
	case LevelMedium:
		return "medium"
	case LevelLow:
		return "low"
	}
	return "unknown"
}

// Names of the key metrics, the values of the metric attribute of
// platform.dora.level.
const (
	MetricDeploymentFrequency = "deployment_frequency"
	MetricLeadTime            = "lead_time"
	MetricChangeFailureRate   = "change_failure_rate"
	MetricRecoveryTime        = "recovery_time"
	MetricOverall             = "overall"
)

// Threshold is the bound a value must reach for a level: for deployment
// frequency a minimum (deployments per day), for the others a maximum
// (seconds, or a ratio for the change failure rate). Inclusive says whether
// the bound itself reaches the level.
type Threshold struct {
	Value     float64
	Inclusive bool
}

func (t Threshold) atLeast(v float64) bool {
	if t.Inclusive {
		return v >= t.Value
	}
	return v > t.Value
}

func (t Threshold) atMost(v float64) bool {
	if t.Inclusive {
		return v <= t.Value
	}
	return v < t.Value
}

// Tier holds the thresholds of one level.
type Tier struct {
	// DeploymentFrequency is in successful deployments per day (a minimum).
	DeploymentFrequency Threshold
	// LeadTime is the median lead time in seconds (a maximum).
	LeadTime Threshold
	// ChangeFailureRate is a ratio from 0 to 1 (a maximum).
	ChangeFailureRate Threshold
	// RecoveryTime is the median recovery time in seconds (a maximum).
	RecoveryTime Threshold
}

// TierSet classifies values into levels. A value gets the best level whose
// threshold it reaches, checked in the order elite, high, medium; otherwise
// it is low.
type TierSet struct {
	// Name is the tier_set attribute ("dora-2024", "team", ...).
	Name   string
	Elite  Tier
	High   Tier
	Medium Tier
}

// Classify returns the level of value v of the named key metric.
func (ts TierSet) Classify(metric string, v float64) Level {
	for i, t := range []Tier{ts.Elite, ts.High, ts.Medium} {
		var ok bool
		switch metric {
		case MetricDeploymentFrequency:
			ok = t.DeploymentFrequency.atLeast(v)
		case MetricLeadTime:
			ok = t.LeadTime.atMost(v)
		case MetricChangeFailureRate:
			ok = t.ChangeFailureRate.atMost(v)
		case MetricRecoveryTime:
			ok = t.RecoveryTime.atMost(v)
		}
		if ok {
			return LevelElite - Level(i)
		}
	}
	return LevelLow
}

const (
	day   = 24 * time.Hour
	week  = 7 * day
	month = 30 * day
)

func seconds(d time.Duration) float64 { return d.Seconds() }

func incl(v float64) Threshold { return Threshold{Value: v, Inclusive: true} }
func excl(v float64) Threshold { return Threshold{Value: v} }

// The DORA reports' software delivery performance clusters, read as
// thresholds (METRICS.md cites the tables and explains the reading):
// "on demand (multiple deploys per day)" is more than one a day; "between
// once per day and once per week" at least one a week; "between once per
// week and once per month" at least one in 30 days; "less than" is strict;
// "between X and Y" reaches the level at Y inclusive; a change failure rate
// of N % is at most N %.
var reportTierSets = map[int]TierSet{
	2023: {
		Name: "dora-2023",
		Elite: Tier{
			DeploymentFrequency: excl(1),
			LeadTime:            excl(seconds(day)),
			ChangeFailureRate:   incl(0.05),
			RecoveryTime:        excl(seconds(time.Hour)),
		},
		High: Tier{
			DeploymentFrequency: incl(1.0 / 7),
			LeadTime:            incl(seconds(week)),
			ChangeFailureRate:   incl(0.10),
			RecoveryTime:        excl(seconds(day)),
		},
		Medium: Tier{
			DeploymentFrequency: incl(1.0 / 30),
			LeadTime:            incl(seconds(month)),
			ChangeFailureRate:   incl(0.15),
			RecoveryTime:        incl(seconds(week)),
		},
	},
	2024: {
		Name: "dora-2024",
		Elite: Tier{
			DeploymentFrequency: excl(1),
			LeadTime:            excl(seconds(day)),
			ChangeFailureRate:   incl(0.05),
			RecoveryTime:        excl(seconds(time.Hour)),
		},
		High: Tier{
			DeploymentFrequency: incl(1.0 / 7),
			LeadTime:            incl(seconds(week)),
			ChangeFailureRate:   incl(0.20),
			RecoveryTime:        excl(seconds(day)),
		},
		// The 2024 medium cluster had a lower change failure rate (10 %)
		// than the high one (20 %) and the same recovery time (less than a
		// day): by those two metrics alone no value is medium.
		Medium: Tier{
			DeploymentFrequency: incl(1.0 / 30),
			LeadTime:            incl(seconds(month)),
			ChangeFailureRate:   incl(0.10),
			RecoveryTime:        excl(seconds(day)),
		},
	},
}

// ReportYears are the DORA report years whose tables are built in.
var ReportYears = []int{2023, 2024}

// ReportTierSet returns the tier set of a DORA report year.
func ReportTierSet(year int) (TierSet, error) {
	ts, ok := reportTierSets[year]
	if !ok {
		return TierSet{}, fmt.Errorf("no DORA report table for %d (have %v)", year, ReportYears)
	}
	return ts, nil
}

// CustomTier is one level of a custom tier set as users write it: a level
// is reached by more than DeploymentsPerDay deployments a day, a median
// lead time below LeadTime, a change failure rate below ChangeFailureRate
// and a median recovery time below RecoveryTime.
type CustomTier struct {
	DeploymentsPerDay float64
	LeadTime          time.Duration
	ChangeFailureRate float64
	RecoveryTime      time.Duration
}

func (c CustomTier) tier() Tier {
	return Tier{
		DeploymentFrequency: excl(c.DeploymentsPerDay),
		LeadTime:            excl(c.LeadTime.Seconds()),
		ChangeFailureRate:   excl(c.ChangeFailureRate),
		RecoveryTime:        excl(c.RecoveryTime.Seconds()),
	}
}

// DefaultCustomTierName is the tier_set of the default custom tier set.
const DefaultCustomTierName = "team"

// DefaultCustomTiers returns the team's targets from the product brief as
// elite (more than 10 deployments a day, lead time under 2 hours, change
// failure rate under 5 %, recovery under 30 minutes), and high and medium
// levels in between those and DORA's.
func DefaultCustomTiers() (elite, high, medium CustomTier) {
	return CustomTier{DeploymentsPerDay: 10, LeadTime: 2 * time.Hour, ChangeFailureRate: 0.05, RecoveryTime: 30 * time.Minute},
		CustomTier{DeploymentsPerDay: 1, LeadTime: day, ChangeFailureRate: 0.10, RecoveryTime: 4 * time.Hour},
		CustomTier{DeploymentsPerDay: 1.0 / 7, LeadTime: week, ChangeFailureRate: 0.15, RecoveryTime: day}
}

// ValidateCustomTiers checks that each level is reachable and no easier
// than the next lower one. Errors name the level and the field.
func ValidateCustomTiers(elite, high, medium CustomTier) error {
	var errs []error
	tiers := []struct {
		name string
		t    CustomTier
	}{{"elite", elite}, {"high", high}, {"medium", medium}}
	for _, t := range tiers {
		if t.t.DeploymentsPerDay < 0 {
			errs = append(errs, fmt.Errorf("%s::deployment_frequency: must not be negative, got %v", t.name, t.t.DeploymentsPerDay))
		}
		if t.t.LeadTime <= 0 {
			errs = append(errs, fmt.Errorf("%s::lead_time: must be positive, got %s", t.name, t.t.LeadTime))
		}
		if t.t.ChangeFailureRate <= 0 || t.t.ChangeFailureRate > 1 {
			errs = append(errs, fmt.Errorf("%s::change_failure_rate: must be a ratio above 0 and at most 1, got %v", t.name, t.t.ChangeFailureRate))
		}
		if t.t.RecoveryTime <= 0 {
			errs = append(errs, fmt.Errorf("%s::recovery_time: must be positive, got %s", t.name, t.t.RecoveryTime))
		}
	}
	for i := 1; i < len(tiers); i++ {
		better, worse := tiers[i-1], tiers[i]
		if worse.t.DeploymentsPerDay > better.t.DeploymentsPerDay {
			errs = append(errs, fmt.Errorf("%s::deployment_frequency: %v is above %s's %v", worse.name, worse.t.DeploymentsPerDay, better.name, better.t.DeploymentsPerDay))
		}
		if worse.t.LeadTime < better.t.LeadTime {
			errs = append(errs, fmt.Errorf("%s::lead_time: %s is below %s's %s", worse.name, worse.t.LeadTime, better.name, better.t.LeadTime))
		}
		if worse.t.ChangeFailureRate < better.t.ChangeFailureRate {
			errs = append(errs, fmt.Errorf("%s::change_failure_rate: %v is below %s's %v", worse.name, worse.t.ChangeFailureRate, better.name, better.t.ChangeFailureRate))
		}
		if worse.t.RecoveryTime < better.t.RecoveryTime {
			errs = append(errs, fmt.Errorf("%s::recovery_time: %s is below %s's %s", worse.name, worse.t.RecoveryTime, better.name, better.t.RecoveryTime))
		}
	}
	return errors.Join(errs...)
}

// CustomTierSet builds a tier set from custom levels.
func CustomTierSet(name string, elite, high, medium CustomTier) TierSet {
	return TierSet{Name: name, Elite: elite.tier(), High: high.tier(), Medium: medium.tier()}
}

// DefaultTierSets are the DORA 2024 table and the team's custom set.
func DefaultTierSets() []TierSet {
	dora, _ := ReportTierSet(2024)
	e, h, m := DefaultCustomTiers()
	return []TierSet{dora, CustomTierSet(DefaultCustomTierName, e, h, m)}
}
