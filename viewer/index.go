package viewer

import (
	"context"
	"errors"
	"html/template"
	"net/url"
	"slices"

	"github.com/otelfr/otel-flightrecorder/snapstore"
)

// How the index reads a store that pages (snapstore.Pager): one page of
// indexPageSize snapshots, so that a bucket of any size opens its index in
// one listing request and as many reads; with a filter, further pages
// until indexPageSize match or maxFilterPages were read, so that the
// snapshots of one replica among many still show, at a bounded cost.
const (
	indexPageSize  = 50
	maxFilterPages = 10
)

// jsonPageSize is the page size with which /snapshots.json reads a store
// that pages: S3 lists at most 1,000 keys a request.
const jsonPageSize = 1000

// Bounds on the query of the index and snapshots.json: an opaque page
// token as a store returns it (bucketstore's are base64url), and a
// service name or instance ID.
const (
	maxTokenLen  = 2048
	maxFilterLen = 256
)

// maxChoices caps the services, and the instances, offered as filter links.
const maxChoices = 20

var (
	errBadPage   = errors.New("page must be a token from an index page's link")
	errBadFilter = errors.New("service and instance must be at most 256 printable characters")
	errStalePage = errors.New("this page of the index cannot be read: its link is stale or was altered; start again from the newest snapshots")
)

// filter narrows a listing to the snapshots of one service, one instance,
// or both, as their Info.Resource names them; the zero filter keeps all.
type filter struct {
	Service, Instance string
}

// IsZero reports whether f keeps every snapshot.
func (f filter) IsZero() bool { return f == filter{} }

func (f filter) match(in snapstore.Info) bool {
	return (f.Service == "" || in.Resource.ServiceName == f.Service) &&
		(f.Instance == "" || in.Resource.ServiceInstanceID == f.Instance)
}

// listQuery is what the query of the index or snapshots.json asks for.
type listQuery struct {
	filter
	Page string // a store's page token; "" for the newest
}

// parseListQuery reads ?service=, ?instance= and ?page=, refusing values
// that no link of the viewer holds: over-long ones, and control characters.
func parseListQuery(q url.Values) (listQuery, error) {
	lq := listQuery{
		filter: filter{Service: q.Get("service"), Instance: q.Get("instance")},
		Page:   q.Get("page"),
	}
	if len(lq.Page) > maxTokenLen || !printable(lq.Page, false) {
		return listQuery{}, errBadPage
	}
	for _, s := range []string{lq.Service, lq.Instance} {
		if len(s) > maxFilterLen || !printable(s, true) {
			return listQuery{}, errBadFilter
		}
	}
	return lq, nil
}

// printable reports whether s holds no control character, nor, unless
// spaces, a space: a page token is one word.
func printable(s string, spaces bool) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r == ' ' && !spaces) || r == 0xfffd {
			return false
		}
	}
	return true
}

// indexPage is the index: the snapshots of one page of the store, or all
// of a store that does not page, matching the filter.
type indexPage struct {
	Snapshots []snapstore.Info
	Filter    filter

	// Paged is set over a store that pages: Page is the token the page
	// started at ("" for the newest), Next the one it ends at ("" after
	// the last page), and Read how many snapshots it read from Pages pages
	// to find those it shows.
	Paged      bool
	Page, Next string
	Read       int
	Pages      int

	// More counts the matching snapshots left off a store that does not
	// page, over indexLimit.
	More int

	// Services and Instances are those seen among the snapshots read,
	// offered as filters; Instances are the filtered service's when a
	// service is chosen.
	Services, Instances []string
	// Fleet is set when a snapshot shown names the process that took it.
	Fleet bool
}

// Link returns the index's URL for the service and instance given and the
// page token, relative to the index: "?" and a query, or "./" for the
// newest snapshots unfiltered.
func (p indexPage) Link(service, instance, page string) template.URL {
	q := url.Values{}
	for k, v := range map[string]string{"service": service, "instance": instance, "page": page} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if len(q) == 0 {
		return "./"
	}
	// Encode sorts by key and escapes every value: the URL holds no
	// scheme and nothing else than the query.
	return template.URL("?" + q.Encode())
}

// readIndex reads the snapshots of the index page that q asks for.
func readIndex(ctx context.Context, store snapstore.Store, q listQuery) (indexPage, error) {
	p := indexPage{Filter: q.filter, Page: q.Page}
	var read []snapstore.Info
	if pager, ok := store.(snapstore.Pager); ok {
		p.Paged = true
		tok := q.Page
		for {
			infos, next, err := pager.ListPage(ctx, tok, indexPageSize)
			if err != nil {
				if errors.Is(err, snapstore.ErrBadPageToken) {
					return indexPage{}, errStalePage
				}
				return indexPage{}, err
			}
			p.Pages++
			read = append(read, infos...)
			for _, in := range infos {
				if q.match(in) {
					p.Snapshots = append(p.Snapshots, in)
				}
			}
			tok = next
			if next == "" || q.IsZero() || len(p.Snapshots) >= indexPageSize || p.Pages == maxFilterPages {
				break
			}
		}
		p.Next, p.Read = tok, len(read)
	} else {
		var err error
		if read, err = store.List(ctx); err != nil {
			return indexPage{}, err
		}
		for _, in := range read {
			if q.match(in) {
				p.Snapshots = append(p.Snapshots, in)
			}
		}
		if len(p.Snapshots) > indexLimit {
			p.Snapshots, p.More = p.Snapshots[:indexLimit], len(p.Snapshots)-indexLimit
		}
	}
	p.Services, p.Instances = choices(read, q.Service)
	for _, in := range p.Snapshots {
		p.Fleet = p.Fleet || in.Resource != snapstore.Resource{}
	}
	return p, nil
}

// choices returns the services named in infos, and the instances of
// service (of every service when it is ""), each sorted and at most
// maxChoices.
func choices(infos []snapstore.Info, service string) (services, instances []string) {
	for _, in := range infos {
		r := in.Resource
		if r.ServiceName != "" && !slices.Contains(services, r.ServiceName) {
			services = append(services, r.ServiceName)
		}
		if r.ServiceInstanceID != "" && (service == "" || r.ServiceName == service) &&
			!slices.Contains(instances, r.ServiceInstanceID) {
			instances = append(instances, r.ServiceInstanceID)
		}
	}
	slices.Sort(services)
	slices.Sort(instances)
	return services[:min(len(services), maxChoices)], instances[:min(len(instances), maxChoices)]
}

// readList returns what /snapshots.json lists: the newest snapshots that
// match f, at most n. Over a store that pages, it reads pages of
// jsonPageSize until it has n or has read the last, rather than List the
// whole store; a filter that few snapshots match may read every page, as
// List would.
func readList(ctx context.Context, store snapstore.Store, f filter, n int) ([]snapstore.Info, error) {
	out := []snapstore.Info{} // JSON [] for none, not null
	keep := func(infos []snapstore.Info) {
		for _, in := range infos {
			if len(out) < n && f.match(in) {
				out = append(out, in)
			}
		}
	}
	pager, ok := store.(snapstore.Pager)
	if !ok {
		infos, err := store.List(ctx)
		if err != nil {
			return nil, err
		}
		keep(infos)
		return out, nil
	}
	for tok := ""; ; {
		infos, next, err := pager.ListPage(ctx, tok, min(n, jsonPageSize))
		if err != nil {
			return nil, err
		}
		keep(infos)
		if next == "" || len(out) >= n {
			return out, nil
		}
		tok = next
	}
}
