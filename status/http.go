package status

import (
	"embed"
	"encoding/json"
	"io/fs"
	"net/http"
)

// assets are the status page: plain HTML, CSS and a little JavaScript,
// served from the binary so that the page works offline.
//
//go:embed assets
var assets embed.FS

// Paths of the status endpoints on the process's HTTP mux.
const (
	// PathAPI answers the Status as JSON.
	PathAPI = "/api/status"
	// PathAssets prefixes the page's script and style sheet.
	PathAssets = "/status/"
)

// Register mounts GET /api/status, the page at exactly GET / and its assets
// under /status/. The page's pattern matches "/" alone, so that the
// collector's catch-all (/v1/...) and /metrics, /healthz, /readyz keep
// their paths.
func (r *Reporter) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET "+PathAPI, r.serveJSON)
	sub, err := fs.Sub(assets, "assets")
	if err != nil {
		// The embedded tree is fixed at build time: this cannot happen.
		panic(err)
	}
	mux.Handle("GET "+PathAssets, http.StripPrefix(PathAssets, noCache(http.FileServerFS(sub))))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		http.ServeFileFS(w, req, sub, "index.html")
	})
}

func (r *Reporter) serveJSON(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(r.Status())
}

// noCache makes browsers check the assets again after an upgrade: the
// binary's embedded files carry no modification time to compare.
func noCache(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		h.ServeHTTP(w, req)
	})
}
