package admin

import (
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// Instrument counts the requests h serves in
// sendergate_admin_requests_total by route pattern (the ServeMux pattern
// that matched, such as "GET /v1/orgs/{org}/domains", so that the labels
// stay few whatever the paths) and status code, registered on reg. The
// series of the health and metrics routes exist from the start.
func Instrument(h http.Handler, reg prometheus.Registerer) (http.Handler, error) {
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sendergate_admin_requests_total",
		Help: "Admin API requests by route (the matched pattern, \"/\" for no route) and HTTP status code.",
	}, []string{"route", "code"})
	if err := reg.Register(requests); err != nil {
		return nil, err
	}
	requests.WithLabelValues("GET /healthz", "200")
	requests.WithLabelValues("GET /metrics", "200")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(sw, r)
		// The mux sets r.Pattern on the request it routed, this one.
		route := r.Pattern
		if route == "" {
			route = "/"
		}
		requests.WithLabelValues(route, strconv.Itoa(sw.status)).Inc()
	}), nil
}
