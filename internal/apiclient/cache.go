package apiclient

import (
	"bytes"
	"container/list"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"strconv"
	"sync"
)

// cache keeps the last 200 answer of each GET URL that carried a
// validator (ETag, Last-Modified), least recently used first out, within
// a count and a byte bound. It lives as long as the transport: an import
// resumed or run again on demand in the same process re-reads pages
// conditionally, and GitHub does not count a 304 against the rate limit.
type cache struct {
	mu         sync.Mutex
	maxEntries int
	maxBytes   int64
	maxEntry   int64
	bytes      int64
	lru        *list.List // of *entry, most recent first
	byKey      map[string]*list.Element
}

type entry struct {
	key          string
	etag         string
	lastModified string
	header       http.Header
	body         []byte
}

func newCache(entries int, bytes int64) *cache {
	return &cache{maxEntries: entries, maxBytes: bytes, maxEntry: bytes / 4, lru: list.New(), byKey: map[string]*list.Element{}}
}

// cacheKey is the URL with the headers that change the answer: Accept
// (media types, API versions) and the credential, hashed so that one
// token's answer is never served to another and no token is kept.
func cacheKey(req *http.Request) string {
	h := sha256.New()
	for _, name := range []string{"Authorization", "Private-Token", "Job-Token", "X-GitHub-Api-Version"} {
		h.Write([]byte(name))
		h.Write([]byte{0})
		h.Write([]byte(req.Header.Get(name)))
		h.Write([]byte{0})
	}
	return req.URL.String() + "\x00" + req.Header.Get("Accept") + "\x00" + hex.EncodeToString(h.Sum(nil)[:16])
}

func (c *cache) size(e *entry) int64 {
	n := int64(len(e.body) + len(e.key) + len(e.etag) + len(e.lastModified))
	for k, vs := range e.header {
		for _, v := range vs {
			n += int64(len(k) + len(v))
		}
	}
	return n
}

func (c *cache) get(key string) *entry {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.byKey[key]
	if !ok {
		return nil
	}
	c.lru.MoveToFront(el)
	return el.Value.(*entry)
}

// keep reads resp's body to store it (when it is small enough) and
// returns a response whose body is the same bytes.
func (c *cache) keep(key string, resp *http.Response) *http.Response {
	buf, err := io.ReadAll(io.LimitReader(resp.Body, c.maxEntry+1))
	if err != nil || int64(len(buf)) > c.maxEntry {
		// Too large (or broken): hand on what was read and the rest.
		resp.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(buf), resp.Body), resp.Body}
		return resp
	}
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(buf))
	e := &entry{key: key, etag: resp.Header.Get("ETag"), lastModified: resp.Header.Get("Last-Modified"),
		header: resp.Header.Clone(), body: buf}
	c.put(e)
	return resp
}

func (c *cache) put(e *entry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.byKey[e.key]; ok {
		c.bytes -= c.size(old.Value.(*entry))
		c.lru.Remove(old)
		delete(c.byKey, e.key)
	}
	c.byKey[e.key] = c.lru.PushFront(e)
	c.bytes += c.size(e)
	for c.lru.Len() > c.maxEntries || c.bytes > c.maxBytes {
		last := c.lru.Back()
		old := last.Value.(*entry)
		c.lru.Remove(last)
		delete(c.byKey, old.key)
		c.bytes -= c.size(old)
	}
}

// response is the cached answer as a 200 for req, with the headers of
// the 304 (rate-limit counters, a new Date or ETag) over the stored ones,
// as RFC 9111 §4.3.4 says; the stored Link headers stay, so pagination
// goes on.
func (e *entry) response(req *http.Request, notModified *http.Response) *http.Response {
	discard(notModified)
	h := e.header.Clone()
	for k, vs := range notModified.Header {
		if k == "Content-Length" || k == "Content-Type" || k == "Content-Encoding" {
			continue
		}
		h[k] = append([]string(nil), vs...)
	}
	h.Set("X-From-Cache", "1")
	h.Set("Content-Length", strconv.Itoa(len(e.body)))
	return &http.Response{
		Status:        "200 OK",
		StatusCode:    http.StatusOK,
		Proto:         notModified.Proto,
		ProtoMajor:    notModified.ProtoMajor,
		ProtoMinor:    notModified.ProtoMinor,
		Header:        h,
		Body:          io.NopCloser(bytes.NewReader(e.body)),
		ContentLength: int64(len(e.body)),
		Request:       req,
		TLS:           notModified.TLS,
	}
}
