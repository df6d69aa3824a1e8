package registryclient

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/berthrt/berth/errdefs"
)

// maxListPages bounds pagination, against a registry that loops.
const maxListPages = 10000

// Tags lists the tags of ref's repository (ref's tag and digest are
// ignored), following the registry's Link pagination. A missing repository
// gives an error wrapping errdefs.ErrNotFound.
func (c *Client) Tags(ctx context.Context, ref Reference) ([]string, error) {
	var tags []string
	err := c.onEndpoints(ctx, ref, func(ep *endpoint) error {
		tags = nil
		return c.list(ctx, ep, "/v2/"+ref.Repository+"/tags/list", pullScope(ref), func(body []byte) error {
			var doc struct {
				Tags []string `json:"tags"`
			}
			if err := json.Unmarshal(body, &doc); err != nil {
				return fmt.Errorf("tags list: %v: %w", err, errdefs.ErrInvalid)
			}
			tags = append(tags, doc.Tags...)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list tags of %s: %w", ref.Name(), err)
	}
	return tags, nil
}

// Catalog lists the repositories of registry (a host such as
// "127.0.0.1:5000"), following Link pagination. Many registries, Docker Hub
// among them, refuse it.
func (c *Client) Catalog(ctx context.Context, registry string) ([]string, error) {
	ep, err := c.registryEndpoint(ctx, registry)
	if err != nil {
		return nil, fmt.Errorf("catalog of %s: %w", registry, err)
	}
	var repos []string
	err = c.list(ctx, ep, "/v2/_catalog", []string{"registry:catalog:*"}, func(body []byte) error {
		var doc struct {
			Repositories []string `json:"repositories"`
		}
		if err := json.Unmarshal(body, &doc); err != nil {
			return fmt.Errorf("catalog: %v: %w", err, errdefs.ErrInvalid)
		}
		repos = append(repos, doc.Repositories...)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("catalog of %s: %w", registry, err)
	}
	return repos, nil
}

// list GETs path and the pages its Link headers point to.
func (c *Client) list(ctx context.Context, ep *endpoint, path string, scopes []string, page func([]byte) error) error {
	next := ep.url(path)
	for i := 0; next != "" && i < maxListPages; i++ {
		var body []byte
		var link string
		var base *url.URL
		err := c.retryTransfer(ctx, func() error {
			resp, err := c.send(ctx, ep, &request{method: http.MethodGet, rawURL: next, scopes: scopes, noAuth: !sameHost(next, ep.host)})
			if err != nil {
				return err
			}
			if resp.StatusCode != http.StatusOK {
				return newError(resp)
			}
			defer resp.Body.Close()
			body, err = io.ReadAll(io.LimitReader(resp.Body, 16<<20))
			if err != nil {
				return fmt.Errorf("read list: %w: %w: %w", err, errTransfer, errdefs.ErrUnavailable)
			}
			link, base = nextLink(resp.Header.Values("Link")), resp.Request.URL
			return nil
		})
		if err != nil {
			return err
		}
		if err := page(body); err != nil {
			return err
		}
		next = ""
		if link != "" {
			u, err := base.Parse(link)
			if err != nil {
				return fmt.Errorf("bad Link %q: %w", link, errdefs.ErrInvalid)
			}
			next = u.String()
		}
	}
	return nil
}

// nextLink finds the rel="next" target of RFC 8288 Link headers.
func nextLink(values []string) string {
	for _, v := range values {
		for _, part := range strings.Split(v, ",") {
			part = strings.TrimSpace(part)
			if !strings.HasPrefix(part, "<") {
				continue
			}
			end := strings.IndexByte(part, '>')
			if end < 0 {
				continue
			}
			target, params := part[1:end], part[end+1:]
			for _, p := range strings.Split(params, ";") {
				k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
				if ok && strings.EqualFold(strings.TrimSpace(k), "rel") && strings.Trim(strings.TrimSpace(v), `"`) == "next" {
					return target
				}
			}
		}
	}
	return ""
}
