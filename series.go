package dorareceiver

// Bounded series (issue 13): the ingest core (internal/ingest) passes the
// events of a delivery through the limiter (internal/cardinality) and
// keeps the memory guard; here are the default limits.

// Default limits: an organisation with a couple of thousand services, each
// in a handful of environments (with room for preview environments), and
// the failure reasons of a few CI systems and Kubernetes. At 2000
// production services the collector holds about 56,000 exported series
// and peaks near 360 MiB RSS (BENCHMARKS.md, "Series and state cost").
const (
	defaultMaxServices     = 2000
	defaultMaxEnvironments = 20
	defaultMaxReasons      = 100
	// defaultMaxStateBytes is 512 MiB of estimated state: above the
	// default series limits' estimate (2000 services of 11 stored series:
	// about 360 MiB), under a 1 GiB container with the collector's own.
	defaultMaxStateBytes = 512 << 20
)

// mappedServices are the services of the services mapping, by namespace
// and name: never folded.
func mappedServices(m []ServiceMapping) map[[2]string]bool {
	out := map[[2]string]bool{}
	for _, s := range m {
		out[[2]string{s.Namespace, s.Deployment}] = true
	}
	return out
}
