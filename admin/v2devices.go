package admin

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/tailplane/tailplane/control"
)

// The API v2 device endpoints serve the node inventory (control's Nodes
// and DeleteNode, as /api/v1/nodes does) in Tailscale's device shape
// (tailscale.com/client/tailscale.Device), for the tools written for it.

// device is one node as Tailscale's API v2 shows it. Times are RFC 3339
// in UTC; "expires" is the zero time when the key never expires, as
// Tailscale writes it. The routes are only in ?fields=all answers.
type device struct {
	Addresses                 []string `json:"addresses"`
	ID                        string   `json:"id"`     // the numeric node ID, as a string
	NodeID                    string   `json:"nodeId"` // the stable node ID
	User                      string   `json:"user"`   // the owner's login; "tagged-devices" for a tagged node
	Name                      string   `json:"name"`   // the MagicDNS name (FQDN)
	Hostname                  string   `json:"hostname"`
	ClientVersion             string   `json:"clientVersion"`
	UpdateAvailable           bool     `json:"updateAvailable"`
	OS                        string   `json:"os"`
	Tags                      []string `json:"tags,omitempty"`
	Created                   string   `json:"created"`
	LastSeen                  string   `json:"lastSeen,omitempty"`
	ConnectedToControl        bool     `json:"connectedToControl"`
	KeyExpiryDisabled         bool     `json:"keyExpiryDisabled"`
	Expires                   string   `json:"expires"`
	Authorized                bool     `json:"authorized"`
	IsExternal                bool     `json:"isExternal"`
	MachineKey                string   `json:"machineKey"`
	NodeKey                   string   `json:"nodeKey"`
	BlocksIncomingConnections bool     `json:"blocksIncomingConnections"`
	EnabledRoutes             []string `json:"enabledRoutes,omitzero"`
	AdvertisedRoutes          []string `json:"advertisedRoutes,omitzero"`
}

// v2Devices registers the device endpoints, when there is an inventory.
func (a *api) v2Devices(mux *http.ServeMux) {
	if a.cfg.Control == nil {
		return
	}
	mux.Handle("GET /api/v2/tailnet/{tailnet}/devices", a.authV2(RoleRead, a.listDevices))
	mux.Handle("GET /api/v2/device/{id}", a.authV2(RoleRead, a.showDevice))
	mux.Handle("DELETE /api/v2/device/{id}", a.authV2(RoleAdmin, a.deleteDevice))
}

// deviceFields reads ?fields=: "" or "default" leaves the routes out,
// "all" puts them in; Tailscale's other values are not supported.
func deviceFields(r *http.Request) (all bool, err error) {
	switch f := r.URL.Query().Get("fields"); f {
	case "", "default":
		return false, nil
	case "all":
		return true, nil
	default:
		return false, fmt.Errorf("fields=%q is not supported (hint: fields=default or fields=all)", f)
	}
}

func (a *api) listDevices(w http.ResponseWriter, r *http.Request) {
	all, err := deviceFields(r)
	if err != nil {
		v2Error(w, http.StatusBadRequest, err.Error())
		return
	}
	nodes, err := a.cfg.Control.Nodes(r.Context())
	if err != nil {
		v2Error(w, http.StatusServiceUnavailable, "listing nodes: "+err.Error())
		return
	}
	out := struct {
		Devices []device `json:"devices"`
	}{Devices: []device{}}
	for _, n := range nodes {
		out.Devices = append(out.Devices, toDevice(n, all))
	}
	writeJSON(w, out)
}

func (a *api) showDevice(w http.ResponseWriter, r *http.Request) {
	all, err := deviceFields(r)
	if err != nil {
		v2Error(w, http.StatusBadRequest, err.Error())
		return
	}
	n, ok := a.findDevice(w, r)
	if ok {
		writeJSON(w, toDevice(n, all))
	}
}

// deleteDevice deletes the node (as DELETE /api/v1/nodes/{id} does) and
// records it in the audit log; the answer is 200 with an empty body, as
// Tailscale's.
func (a *api) deleteDevice(w http.ResponseWriter, r *http.Request) {
	n, ok := a.findDevice(w, r)
	if !ok {
		return
	}
	_, err := a.cfg.Control.DeleteNode(r.Context(), n.ID)
	if !a.recorded(w, r, fmt.Sprintf("delete node %s (%d)", n.Name, n.ID), err) {
		return
	}
	switch {
	case errors.Is(err, control.ErrNodeNotFound):
		v2Error(w, http.StatusNotFound, err.Error())
	case err != nil:
		v2Error(w, http.StatusInternalServerError, "deleting the node: "+err.Error())
	default:
		w.WriteHeader(http.StatusOK)
	}
}

// findDevice finds the node {id} names: its numeric ID or its stable ID
// (Tailscale's "id" and "nodeId"). It answers 404 when there is none.
func (a *api) findDevice(w http.ResponseWriter, r *http.Request) (control.NodeInfo, bool) {
	id := r.PathValue("id")
	nodes, err := a.cfg.Control.Nodes(r.Context())
	if err != nil {
		v2Error(w, http.StatusServiceUnavailable, "listing nodes: "+err.Error())
		return control.NodeInfo{}, false
	}
	for _, n := range nodes {
		if strconv.FormatInt(int64(n.ID), 10) == id || string(n.StableID) == id {
			return n, true
		}
	}
	v2Error(w, http.StatusNotFound, fmt.Sprintf("no device %q (hint: its id or nodeId from GET /api/v2/tailnet/-/devices)", id))
	return control.NodeInfo{}, false
}

// toDevice is n in Tailscale's device shape; all adds the routes.
func toDevice(n control.NodeInfo, all bool) device {
	d := device{
		ID: strconv.FormatInt(int64(n.ID), 10), NodeID: string(n.StableID),
		User: n.User, Name: n.FQDN, Hostname: n.Hostname,
		ClientVersion: n.ClientVersion, OS: n.OS, Tags: n.Tags,
		Created: apiTime(n.Created), LastSeen: apiTime(n.LastSeen), ConnectedToControl: n.Online,
		KeyExpiryDisabled: n.KeyExpiry.IsZero(), Expires: n.KeyExpiry.UTC().Format(time.RFC3339),
		Authorized: !n.PendingApproval,
		MachineKey: n.MachineKey, NodeKey: n.NodeKey,
	}
	if n.User == "" {
		d.User = "tagged-devices" // the login tailplane gives tagged nodes' profile
	}
	for _, addr := range n.Addresses {
		d.Addresses = append(d.Addresses, addr.String())
	}
	if all {
		d.EnabledRoutes, d.AdvertisedRoutes = []string{}, []string{}
		for _, ra := range n.ApprovedRoutes {
			d.EnabledRoutes = append(d.EnabledRoutes, ra.Route.String())
		}
		for _, p := range n.AdvertisedRoutes {
			d.AdvertisedRoutes = append(d.AdvertisedRoutes, p.String())
		}
	}
	return d
}

// apiTime is t in RFC 3339 (UTC), or "" for the zero time.
func apiTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}
