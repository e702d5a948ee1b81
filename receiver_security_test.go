package dorareceiver

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/receiver/receivertest"

	"github.com/otelcol-dora/dorareceiver/internal/generic"
	"github.com/otelcol-dora/dorareceiver/internal/metadata"
	"github.com/otelcol-dora/dorareceiver/internal/webhook"
)

// startReceiverFromMap starts the receiver on the webhooks section given as
// a user would write it (the YAML keys, unmarshaled like the collector
// does), with the generic source signed by testSecret.
func startReceiverFromMap(t *testing.T, next *flakyConsumer, webhooks map[string]any) string {
	t.Helper()
	endpoint := freeEndpoint(t)
	webhooks["endpoint"] = endpoint
	if _, ok := webhooks["generic"]; !ok {
		webhooks["generic"] = map[string]any{"secret": testSecret}
	}
	cfg := createDefaultConfig()
	cm := confmap.NewFromStringMap(map[string]any{
		"webhooks": webhooks,
		"services": []any{map[string]any{"repository": "acme/api", "namespace": "shop", "deployment": "api"}},
	})
	require.NoError(t, cm.Unmarshal(cfg))
	require.NoError(t, cfg.Validate())
	rcv, err := NewFactory().CreateMetrics(context.Background(), receivertest.NewNopSettings(metadata.Type), cfg, next)
	require.NoError(t, err)
	require.NoError(t, rcv.Start(context.Background(), componenttest.NewNopHost()))
	t.Cleanup(func() { require.NoError(t, rcv.Shutdown(context.Background())) })
	return endpoint
}

func TestWebhookServerTimeoutDefaults(t *testing.T) {
	cfg := createDefaultConfig()
	// A user config that names none of the timeouts keeps the defaults.
	cm := confmap.NewFromStringMap(map[string]any{"webhooks": map[string]any{"generic": map[string]any{"secret": testSecret}}})
	require.NoError(t, cm.Unmarshal(cfg))
	sc := cfg.Webhooks.Get().ServerConfig
	assert.Equal(t, DefaultReadHeaderTimeout, sc.ReadHeaderTimeout)
	assert.Equal(t, DefaultReadTimeout, sc.ReadTimeout)
	assert.Equal(t, DefaultWriteTimeout, sc.WriteTimeout)
	require.True(t, sc.Keepalive.HasValue())
	assert.Equal(t, DefaultIdleTimeout, sc.Keepalive.Get().IdleTimeout)

	// Each one can be changed by its key.
	cfg = createDefaultConfig()
	cm = confmap.NewFromStringMap(map[string]any{"webhooks": map[string]any{
		"generic":             map[string]any{"secret": testSecret},
		"read_header_timeout": "3s", "read_timeout": "4s", "write_timeout": "5s",
		"keepalive": map[string]any{"idle_timeout": "6s"},
	}})
	require.NoError(t, cm.Unmarshal(cfg))
	sc = cfg.Webhooks.Get().ServerConfig
	assert.Equal(t, 3*time.Second, sc.ReadHeaderTimeout)
	assert.Equal(t, 4*time.Second, sc.ReadTimeout)
	assert.Equal(t, 5*time.Second, sc.WriteTimeout)
	assert.Equal(t, 6*time.Second, sc.Keepalive.Get().IdleTimeout)
}

// trickle writes data one byte every interval until the server closes the
// connection (a read returns) or data runs out; it returns how much was
// written and what the server answered, if anything.
func trickle(t *testing.T, conn net.Conn, data []byte, interval time.Duration) (written int, answer string) {
	t.Helper()
	closed := make(chan string, 1)
	go func() {
		raw, _ := io.ReadAll(conn)
		closed <- string(raw)
	}()
	for written < len(data) {
		select {
		case answer = <-closed:
			return written, answer
		case <-time.After(interval):
		}
		if _, err := conn.Write(data[written : written+1]); err != nil {
			return written, <-closed
		}
		written++
	}
	// Everything was sent: give the server its chance to answer.
	select {
	case answer = <-closed:
	case <-time.After(5 * time.Second):
		_ = conn.Close()
		answer = <-closed
	}
	return written, answer
}

func TestSlowClientsAreCutOff(t *testing.T) {
	if testing.Short() {
		t.Skip("trickles bytes for a few seconds")
	}
	next := &flakyConsumer{}
	endpoint := startReceiverFromMap(t, next, map[string]any{
		"read_header_timeout": "500ms",
		"read_timeout":        "1s",
	})
	body := deploymentJSON("slow-1", "success", time.Now())
	head := fmt.Sprintf("POST /events HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nX-Signature-256: sha256=%s\r\nContent-Length: %d\r\n\r\n",
		endpoint, webhook.SignHMACSHA256(testSecret, body), len(body))
	// At 100 ms a byte, the headers alone take ~20 s and the body ~15 s:
	// far beyond the timeouts, so only a cut-off ends them early.
	const interval = 100 * time.Millisecond

	t.Run("headers a byte at a time", func(t *testing.T) {
		conn, err := net.Dial("tcp", endpoint)
		require.NoError(t, err)
		defer conn.Close()
		written, answer := trickle(t, conn, []byte(head), interval)
		assert.Less(t, written, len(head), "the server waited for every header byte")
		assert.NotContains(t, answer, "200 OK")
	})

	t.Run("headers at once, then the body a byte at a time", func(t *testing.T) {
		conn, err := net.Dial("tcp", endpoint)
		require.NoError(t, err)
		defer conn.Close()
		_, err = conn.Write([]byte(head))
		require.NoError(t, err)
		written, answer := trickle(t, conn, body, interval)
		assert.Less(t, written, len(body), "the server waited for every body byte")
		assert.NotContains(t, answer, "200 OK")
		assert.Empty(t, next.AllMetrics(), "a cut-off delivery changed the metrics")
	})

	t.Run("a normal delivery still passes, and the cut-off one was not applied", func(t *testing.T) {
		r := post(t, "http://"+endpoint+"/events", "application/json", body, true)
		require.Equal(t, http.StatusOK, r.status, r.body)
		assert.EqualValues(t, 1, r.body["accepted"], "the trickled copy of this delivery was counted")
		v, ok := counterValue(latest(next), "platform.deployments", map[string]string{"deployment": "api", "status": "success"})
		require.True(t, ok)
		assert.EqualValues(t, 1, v)
	})
}

// testPKI is a CA, a server certificate for 127.0.0.1 and a client
// certificate, written as PEM files in a temporary folder.
type testPKI struct {
	caFile, certFile, keyFile, clientCertFile, clientKeyFile string
	pool                                                     *x509.CertPool
}

func newTestPKI(t *testing.T) testPKI {
	t.Helper()
	dir := t.TempDir()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "dora test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	require.NoError(t, err)
	caCert, err := x509.ParseCertificate(caDER)
	require.NoError(t, err)

	issue := func(serial int64, name string, usage x509.ExtKeyUsage, ips []net.IP) (certPEM, keyPEM []byte) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		require.NoError(t, err)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: name},
			NotBefore:    time.Now().Add(-time.Hour),
			NotAfter:     time.Now().Add(time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{usage},
			IPAddresses:  ips,
			DNSNames:     []string{"localhost"},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		require.NoError(t, err)
		keyDER, err := x509.MarshalECPrivateKey(key)
		require.NoError(t, err)
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
			pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	}
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, data, 0o600))
		return p
	}
	p := testPKI{pool: x509.NewCertPool()}
	p.pool.AddCert(caCert)
	p.caFile = write("ca.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}))
	cert, key := issue(2, "127.0.0.1", x509.ExtKeyUsageServerAuth, []net.IP{net.ParseIP("127.0.0.1")})
	p.certFile, p.keyFile = write("server.pem", cert), write("server-key.pem", key)
	cert, key = issue(3, "dora test sender", x509.ExtKeyUsageClientAuth, nil)
	p.clientCertFile, p.clientKeyFile = write("client.pem", cert), write("client-key.pem", key)
	return p
}

func signedDelivery(t *testing.T, url string, body []byte) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(string(body)))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Signature-256", "sha256="+webhook.SignHMACSHA256(testSecret, body))
	return req
}

func TestWebhookServerTLS(t *testing.T) {
	pki := newTestPKI(t)
	next := &flakyConsumer{}
	endpoint := startReceiverFromMap(t, next, map[string]any{
		"tls": map[string]any{"cert_file": pki.certFile, "key_file": pki.keyFile},
	})
	httpsClient := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pki.pool}}}

	t.Run("a signed delivery over HTTPS is accepted", func(t *testing.T) {
		resp, err := httpsClient.Do(signedDelivery(t, "https://"+endpoint+"/events", deploymentJSON("tls-1", "success", time.Now())))
		require.NoError(t, err)
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		require.Equal(t, http.StatusOK, resp.StatusCode, string(raw))
		assert.NotNil(t, resp.TLS)
		v, ok := counterValue(latest(next), "platform.deployments", map[string]string{"deployment": "api", "status": "success"})
		require.True(t, ok)
		assert.EqualValues(t, 1, v)
	})

	t.Run("plain HTTP to the TLS port is refused", func(t *testing.T) {
		client := &http.Client{Timeout: 10 * time.Second}
		resp, err := client.Do(signedDelivery(t, "http://"+endpoint+"/events", deploymentJSON("tls-2", "success", time.Now())))
		if err == nil {
			// Go's TLS server answers a plain HTTP request with a 400
			// telling to use HTTPS; it never reaches the receiver.
			defer resp.Body.Close()
			assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
		}
		v, _ := counterValue(latest(next), "platform.deployments", map[string]string{"deployment": "api", "status": "success"})
		assert.EqualValues(t, 1, v, "a plain HTTP delivery was counted")
	})

	t.Run("a client that does not trust the certificate refuses it", func(t *testing.T) {
		_, err := (&http.Client{Timeout: 10 * time.Second}).Do(signedDelivery(t, "https://"+endpoint+"/events", deploymentJSON("tls-3", "success", time.Now())))
		var unknown x509.UnknownAuthorityError
		require.ErrorAs(t, err, &unknown)
	})
}

func TestWebhookServerMutualTLS(t *testing.T) {
	pki := newTestPKI(t)
	next := &flakyConsumer{}
	endpoint := startReceiverFromMap(t, next, map[string]any{
		"tls": map[string]any{"cert_file": pki.certFile, "key_file": pki.keyFile, "client_ca_file": pki.caFile},
	})
	url := "https://" + endpoint + "/events"

	t.Run("a client without a certificate is refused", func(t *testing.T) {
		client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pki.pool}}}
		resp, err := client.Do(signedDelivery(t, url, deploymentJSON("mtls-1", "success", time.Now())))
		if err == nil {
			resp.Body.Close()
		}
		require.Error(t, err, "the server accepted a client without a certificate")
		assert.Empty(t, next.AllMetrics())
	})

	t.Run("a client with a certificate of the CA is accepted", func(t *testing.T) {
		cert, err := tls.LoadX509KeyPair(pki.clientCertFile, pki.clientKeyFile)
		require.NoError(t, err)
		client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pki.pool, Certificates: []tls.Certificate{cert}}}}
		resp, err := client.Do(signedDelivery(t, url, deploymentJSON("mtls-2", "success", time.Now())))
		require.NoError(t, err)
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		require.Equal(t, http.StatusOK, resp.StatusCode, string(raw))
	})
}

func TestGenericMaxAgeThroughTheServer(t *testing.T) {
	next := &flakyConsumer{}
	endpoint := startReceiverFromMap(t, next, map[string]any{
		"generic": map[string]any{"secret": testSecret, "max_age": "5m"},
	})
	send := func(body []byte, signedAt time.Time) reply {
		ts := strconv.FormatInt(signedAt.Unix(), 10)
		req, err := http.NewRequest(http.MethodPost, "http://"+endpoint+"/events", bytes.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(generic.TimestampHeader, ts)
		req.Header.Set(generic.SignatureHeader, "sha256="+webhook.SignHMACSHA256(testSecret, generic.SignedContent(ts, body)))
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		var m map[string]any
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&m))
		return reply{status: resp.StatusCode, body: m}
	}
	body := deploymentJSON("aged-1", "success", time.Now())

	r := send(body, time.Now().Add(-10*time.Minute))
	assert.Equal(t, http.StatusBadRequest, r.status)
	assert.Equal(t, "error", r.body["status"])
	assert.Contains(t, r.body["error"], "delivery older than max_age: X-Dora-Timestamp")
	assert.Empty(t, next.AllMetrics())

	// The body-only signature of the same delivery is refused too.
	r = post(t, "http://"+endpoint+"/events", "application/json", body, true)
	assert.Equal(t, http.StatusUnauthorized, r.status)
	assert.Contains(t, r.body["error"], "missing X-Dora-Timestamp header")

	r = send(body, time.Now())
	require.Equal(t, http.StatusOK, r.status, r.body)
	assert.EqualValues(t, 1, r.body["accepted"])
}
