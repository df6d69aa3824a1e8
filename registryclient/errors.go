package registryclient

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/berthrt/berth/errdefs"
)

// Error is an error response from a registry: an HTTP status other than
// the one the call expects, with the first entry of the distribution
// spec's error body ({"errors":[{"code","message","detail"}]}) when there
// is one.
//
// errors.Is maps it to the errdefs kinds: 404 and the *_UNKNOWN codes are
// ErrNotFound; 401, 403, UNAUTHORIZED and DENIED are ErrUnauthorized; 400
// and the *_INVALID codes are ErrInvalid; 405 and UNSUPPORTED are
// ErrUnsupported; 408, 429 and 5xx are ErrUnavailable.
type Error struct {
	// Method and URL of the request that failed (without query secrets).
	Method, URL string
	// StatusCode is the HTTP status.
	StatusCode int
	// Code is the registry's error code, such as "MANIFEST_UNKNOWN", or "".
	Code string
	// Message is the registry's message, or the start of the body.
	Message string
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s: %d %s", e.Method, e.URL, e.StatusCode, http.StatusText(e.StatusCode))
	if e.Code != "" {
		fmt.Fprintf(&b, ": %s", e.Code)
	}
	if e.Message != "" {
		fmt.Fprintf(&b, ": %s", e.Message)
	}
	return b.String()
}

// Temporary reports whether the same request may succeed later: 408, 429
// and 5xx other than 501 and 505.
func (e *Error) Temporary() bool { return retryableStatus(e.StatusCode) }

// Is matches the errdefs kinds; see the type's comment.
func (e *Error) Is(target error) bool {
	switch target {
	case errdefs.ErrNotFound:
		return e.StatusCode == http.StatusNotFound || strings.HasSuffix(e.Code, "_UNKNOWN") || e.Code == "NAME_UNKNOWN"
	case errdefs.ErrUnauthorized:
		return e.StatusCode == http.StatusUnauthorized || e.StatusCode == http.StatusForbidden ||
			e.Code == "UNAUTHORIZED" || e.Code == "DENIED"
	case errdefs.ErrInvalid:
		return e.StatusCode == http.StatusBadRequest || strings.HasSuffix(e.Code, "_INVALID") ||
			e.Code == "SIZE_INVALID" || e.StatusCode == http.StatusRequestEntityTooLarge
	case errdefs.ErrUnsupported:
		return e.StatusCode == http.StatusMethodNotAllowed || e.StatusCode == http.StatusNotImplemented || e.Code == "UNSUPPORTED"
	case errdefs.ErrUnavailable:
		return e.Temporary()
	}
	return false
}

func retryableStatus(code int) bool {
	switch code {
	case http.StatusRequestTimeout, http.StatusTooManyRequests:
		return true
	case http.StatusNotImplemented, http.StatusHTTPVersionNotSupported:
		return false
	}
	return code >= 500 && code <= 599
}

// newError reads (a bounded part of) resp's body into an *Error and closes it.
func newError(resp *http.Response) *Error {
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	e := &Error{Method: resp.Request.Method, URL: redactURL(resp.Request.URL.String()), StatusCode: resp.StatusCode}
	var doc struct {
		Errors []struct {
			Code    string          `json:"code"`
			Message string          `json:"message"`
			Detail  json.RawMessage `json:"detail"`
		} `json:"errors"`
	}
	if json.Unmarshal(body, &doc) == nil && len(doc.Errors) > 0 {
		e.Code, e.Message = doc.Errors[0].Code, doc.Errors[0].Message
		if len(doc.Errors) > 1 {
			e.Message += fmt.Sprintf(" (and %d more)", len(doc.Errors)-1)
		}
	} else if resp.Request.Method != http.MethodHead {
		msg := strings.TrimSpace(string(body))
		if len(msg) > 200 {
			msg = msg[:200] + "..."
		}
		e.Message = msg
	}
	return e
}

// redactURL drops the query string, which may carry upload state or
// signed-URL secrets.
func redactURL(u string) string {
	if i := strings.IndexByte(u, '?'); i >= 0 {
		return u[:i]
	}
	return u
}

// isNotFound and friends keep call sites short.
func isNotFound(err error) bool { return errors.Is(err, errdefs.ErrNotFound) }
