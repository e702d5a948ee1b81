package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// yamlBlock is a fenced yaml block of a Markdown file.
var yamlBlock = regexp.MustCompile("(?s)```ya?ml\n(.*?)```")

// envRef is a ${env:NAME} or ${env:NAME:-default} reference.
var envRef = regexp.MustCompile(`\$\{env:([A-Za-z_][A-Za-z0-9_]*)`)

// fileRef is a ${file:PATH} reference.
var fileRef = regexp.MustCompile(`\$\{file:([^}]+)\}`)

// kubeconfigRef and contextRef are the kubeconfig files and contexts of
// kubernetes::clusters entries, which validation reads.
var (
	kubeconfigRef = regexp.MustCompile(`(?m)^(\s*(?:- )?kubeconfig:\s*)([^\s"#]+)`)
	contextRef    = regexp.MustCompile(`(?m)^\s*(?:- )?context:\s*([\w.-]+)`)
)

// exampleKubeconfig holds every context of an example, on servers that
// are never reached (validate does not connect).
func exampleKubeconfig(contexts []string) string {
	var b strings.Builder
	b.WriteString("apiVersion: v1\nkind: Config\nusers:\n- name: u\n  user: {token: t}\nclusters:\n- name: c\n  cluster: {server: \"https://127.0.0.1:1\"}\ncontexts:\n")
	for _, c := range contexts {
		b.WriteString("- name: " + c + "\n  context: {cluster: c, user: u}\n")
	}
	if len(contexts) > 0 {
		b.WriteString("current-context: " + contexts[0] + "\n")
	}
	return b.String()
}

// doraReceiver finds the dora receivers a yaml block configures.
var doraReceiver = regexp.MustCompile(`(?m)^  (dora(?:/[\w-]+)?):\s*$`)

// TestDocsConfigurationsValidate runs `otelcol-dora validate` on every
// configuration of the dora receiver that the documentation shows from its
// receivers: key down, so a renamed or removed key cannot leave an example
// behind that the binary refuses. An example that shows only the receiver
// is completed by a second configuration file, merged over it as the
// collector merges several --config files, with a nop exporter and a
// pipeline. Excerpts below receivers: (a webhooks: section alone) and the
// configurations of other collectors (a sender's) are left out.
func TestDocsConfigurationsValidate(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the built binary; run through make test")
	}
	bin := collectorBinary(t)
	files := []string{"../README.md", "../METRICS.md"}
	docs, err := filepath.Glob("../docs/*.md")
	require.NoError(t, err)
	sources, err := filepath.Glob("../docs/sources/*.md")
	require.NoError(t, err)
	files = append(append(files, docs...), sources...)

	checked := 0
	for _, f := range files {
		text, err := os.ReadFile(f)
		require.NoError(t, err)
		for _, m := range yamlBlock.FindAllSubmatchIndex(text, -1) {
			block := string(text[m[2]:m[3]])
			ids := doraReceiver.FindAllStringSubmatch(block, -1)
			if !strings.HasPrefix(block, "receivers:") || len(ids) == 0 {
				continue
			}
			var receivers []string
			for _, id := range ids {
				receivers = append(receivers, id[1])
			}
			completion := "exporters:\n  nop:\nservice:\n  pipelines:\n    metrics/docs-check:\n" +
				"      receivers: [" + strings.Join(receivers, ", ") + "]\n      exporters: [nop]\n"
			line := strings.Count(string(text[:m[0]]), "\n") + 1
			name := filepath.Base(f) + ":" + strconv.Itoa(line)
			t.Run(name, func(t *testing.T) {
				dir := t.TempDir()
				// A secret read from a file (a mounted Secret): the same
				// reference, to a file of the test's.
				block := fileRef.ReplaceAllStringFunc(block, func(ref string) string {
					f := filepath.Join(dir, filepath.Base(fileRef.FindStringSubmatch(ref)[1]))
					require.NoError(t, os.WriteFile(f, []byte("docs-example-secret-0123456789\n"), 0o600))
					return "${file:" + f + "}"
				})
				// Kubeconfig files of kubernetes::clusters (mounted
				// Secrets): files of the test's with the example's contexts.
				var contexts []string
				for _, m := range contextRef.FindAllStringSubmatch(block, -1) {
					contexts = append(contexts, m[1])
				}
				block = kubeconfigRef.ReplaceAllStringFunc(block, func(ref string) string {
					m := kubeconfigRef.FindStringSubmatch(ref)
					f := filepath.Join(dir, filepath.Base(m[2]))
					require.NoError(t, os.WriteFile(f, []byte(exampleKubeconfig(contexts)), 0o600))
					return m[1] + f
				})
				cfg := filepath.Join(dir, "config.yaml")
				require.NoError(t, os.WriteFile(cfg, []byte(block), 0o600))
				extra := filepath.Join(dir, "completion.yaml")
				require.NoError(t, os.WriteFile(extra, []byte(completion), 0o600))
				cmd := exec.Command(bin, "validate", "--config", cfg, "--config", extra)
				cmd.Dir = dir
				// Every variable the example reads gets a value that passes
				// the secret checks (at least 16 bytes); paths it names
				// (storage directories, key files) need not exist to validate.
				// leader_election's lease namespace defaults to the pod's.
				cmd.Env = append(os.Environ(), "HOME="+dir, "POD_NAMESPACE=otelcol-dora")
				for _, ref := range envRef.FindAllStringSubmatch(block, -1) {
					cmd.Env = append(cmd.Env, ref[1]+"=docs-example-secret-0123456789")
				}
				out, err := cmd.CombinedOutput()
				require.NoError(t, err, "%s: otelcol-dora validate refused the example:\n%s", name, out)
			})
			checked++
		}
	}
	// The README's minimal configuration and the reference's full one at
	// least: a pattern that stopped matching would check nothing.
	require.GreaterOrEqual(t, checked, 2)
}
