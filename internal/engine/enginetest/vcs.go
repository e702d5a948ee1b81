package enginetest

import (
	"crypto/sha1"
	"encoding/hex"
	"time"

	"github.com/otelcol-dora/dorareceiver/internal/event"
)

// The stories of the Git and CI systems that report pushes, merges and
// deployments themselves (Bitbucket Cloud, Bitbucket Data Center, Azure
// DevOps): each tells push, merge, deploy, fail and recover with that
// source's events, which its e2e test sends through the binary as the
// source's own signed deliveries (VCSStoryTest names it).

// SHA is a full commit SHA made from name, for stories told through sources
// that take only full SHAs.
func SHA(name string) string {
	sum := sha1.Sum([]byte(name))
	return hex.EncodeToString(sum[:])
}

// VCSStory is one source's story: its moments and revisions, which its e2e
// test turns into deliveries.
type VCSStory struct {
	Source string
	// DeploySource reports the deployments (Bitbucket Data Center has no
	// deployment events: a CI system reports them, here the generic source).
	DeploySource string
	// FailReason is the reason the source gives a failed deployment.
	FailReason string
	// Branch, Merge, R2, R3 and Base are the story's commits: a commit on a
	// feature branch, the merge commit of its pull request (ChangeID), two
	// commits after it on the main line, and the main line's head before
	// the story (never pushed in the story).
	Base, Branch, Merge, R2, R3 string
	ChangeID                    string
}

// Moments of every VCS story, from T0.
const (
	VCSBranchAt, VCSMergedAt = -90 * time.Minute, -60 * time.Minute
	VCSD1Start, VCSD1Done    = -10 * time.Minute, time.Duration(0)
	VCSR2At                  = 20 * time.Minute
	VCSD2Start, VCSD2Failed  = 30 * time.Minute, 35 * time.Minute
	VCSR3At                  = 40 * time.Minute
	VCSD3Start, VCSD3Done    = 50 * time.Minute, 60 * time.Minute
)

// NewVCSStory names the commits of source's story.
func NewVCSStory(source, deploySource, failReason, changeID string) VCSStory {
	return VCSStory{
		Source: source, DeploySource: deploySource, FailReason: failReason, ChangeID: changeID,
		Base: SHA(source + "/base"), Branch: SHA(source + "/branch"), Merge: SHA(source + "/merge"),
		R2: SHA(source + "/r2"), R3: SHA(source + "/r3"),
	}
}

// Events are the story's events, in the order they are delivered.
func (v VCSStory) Events() []event.Event {
	dep := func(ev event.Event, rev string) event.Event {
		ev.Revision = rev
		return From(v.DeploySource, ev)
	}
	src := func(ev event.Event) event.Event { return From(v.Source, ev) }
	return []event.Event{
		src(Change(v.Branch, v.Base, VCSBranchAt)),
		src(Change(v.Merge, v.Base, VCSMergedAt)),
		src(Merged(v.Merge, v.ChangeID, VCSMergedAt)),
		dep(Started(API, "d1", v.Merge, VCSD1Start), v.Merge),
		dep(Succeeded(API, "d1", v.Merge, VCSD1Done), v.Merge),
		src(Change(v.R2, v.Merge, VCSR2At)),
		dep(Started(API, "d2", v.R2, VCSD2Start), v.R2),
		dep(Failed(API, "d2", v.FailReason, VCSD2Failed), v.R2),
		src(Change(v.R3, v.R2, VCSR3At)),
		dep(Started(API, "d3", v.R3, VCSD3Start), v.R3),
		dep(Succeeded(API, "d3", v.R3, VCSD3Done), v.R3),
	}
}

// Scenario is the story with what it leaves. The branch commit is the
// merge's second parent, which no push links (sources give first parents
// only): like a squash merge's branch commits, it is not shipped. d1 ships
// the merge commit (merged 50 minutes before d1 started: its build stage);
// d2 fails; d3 ships r2 and r3 and recovers d2's failure.
func (v VCSStory) Scenario(name, e2eTest string) Scenario {
	return Scenario{
		Name:       name,
		Events:     v.Events(),
		Now:        At(2 * time.Hour),
		EngineOnly: "its source's own deliveries, through the binary by " + e2eTest,
		Want: Expected{
			Counters: map[string]Counter{
				Deployments:        {{API, "success"}: 2, {API, "failure"}: 1},
				DeploymentFailures: {{API, v.FailReason}: 1},
			},
			Histograms: map[string]Histogram{
				LeadTime: {{API, ""}: {secs(VCSD1Done-VCSMergedAt) + secs(VCSD3Done-VCSR2At) + secs(VCSD3Done-VCSR3At), 3}},
				LeadTimeStage: {
					{API, "build"}:  {secs(VCSD1Start - VCSMergedAt), 1},
					{API, "deploy"}: {secs(VCSD1Done-VCSD1Start) + 2*secs(VCSD3Done-VCSD3Start), 3},
				},
				RecoveryTime: {{API, ""}: {secs(VCSD3Done - VCSD2Failed), 1}},
			},
		},
	}
}

// The VCS stories by name, and the stories themselves.
const (
	StoryBitbucket   = "Bitbucket Cloud: push, merge, deploy, fail, recover"
	StoryBitbucketDC = "Bitbucket Data Center: push, merge, deploy, fail, recover"
	StoryAzureDevOps = "Azure DevOps: push, merge, deploy, fail, recover"
)

// The stories' sources, for their e2e tests.
var (
	BitbucketStory   = NewVCSStory(event.SourceBitbucket, event.SourceBitbucket, "failed", "bitbucket/acme/api/pull/7")
	BitbucketDCStory = NewVCSStory(event.SourceBitbucketDC, event.SourceGeneric, "failed", "bitbucket_dc/ACME/api/pull/7")
	AzureDevOpsStory = NewVCSStory(event.SourceAzureDevOps, event.SourceAzureDevOps, "failed", "azure_devops/acme/api/pullrequest/7")
)

func vcsStories() []Scenario {
	return []Scenario{
		BitbucketStory.Scenario(StoryBitbucket, "TestBitbucketStoryEndToEnd"),
		BitbucketDCStory.Scenario(StoryBitbucketDC, "TestBitbucketDCStoryEndToEnd"),
		AzureDevOpsStory.Scenario(StoryAzureDevOps, "TestAzureDevOpsStoryEndToEnd"),
	}
}
