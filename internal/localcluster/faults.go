package localcluster

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"

	"k8s.io/client-go/tools/clientcmd"
)

// Helpers for fault tests: put something between a client and the API
// server, and expire watches the way a long-running cluster does.

// APIServerAddr is kube-apiserver's host:port.
func (c *Cluster) APIServerAddr() string {
	u, _ := url.Parse(c.APIServerURL)
	return u.Host
}

// KubeconfigVia writes a copy of the admin kubeconfig whose server is
// https://addr (a proxy in front of kube-apiserver; the serving
// certificate is valid for 127.0.0.1) and returns its path.
func (c *Cluster) KubeconfigVia(name, addr string) (string, error) {
	cfg, err := clientcmd.LoadFromFile(c.Kubeconfig)
	if err != nil {
		return "", err
	}
	cfg.Clusters[ContextName].Server = "https://" + addr
	path := filepath.Join(c.Dir, "kubeconfig-"+name)
	return path, clientcmd.WriteToFile(*cfg, path)
}

// CompactEtcd compacts etcd's history up to its current revision, as the
// API server does every --etcd-compaction-interval (5 minutes by default),
// and returns that revision. A watch that resumes from an older
// resourceVersion is then refused with 410 Gone ("too old resource
// version") unless the API server's watch cache still holds it: start the
// cluster with --watch-cache=false to see it for every resource.
func (c *Cluster) CompactEtcd(ctx context.Context) (int64, error) {
	base := "http://127.0.0.1:" + strconv.Itoa(c.etcdPort)
	// etcd's gRPC gateway (JSON over HTTP) spares a client dependency.
	var head struct {
		Header struct {
			Revision string `json:"revision"`
		} `json:"header"`
	}
	// A range on a key that does not exist still answers with the revision.
	if err := etcdCall(ctx, base+"/v3/kv/range", map[string]any{"key": "AA=="}, &head); err != nil {
		return 0, err
	}
	rev, err := strconv.ParseInt(head.Header.Revision, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("localcluster: etcd revision %q: %w", head.Header.Revision, err)
	}
	if err := etcdCall(ctx, base+"/v3/kv/compaction", map[string]any{"revision": strconv.FormatInt(rev, 10), "physical": true}, nil); err != nil {
		return 0, err
	}
	return rev, nil
}

func etcdCall(ctx context.Context, url string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("localcluster: etcd %s: %w", url, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("localcluster: etcd %s: %s: %s", url, resp.Status, raw)
	}
	if out != nil {
		return json.Unmarshal(raw, out)
	}
	return nil
}
