package acmedns

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/cloudflare/cloudflare-go"
)

// CloudflareConfig configures the Cloudflare provider.
type CloudflareConfig struct {
	// APIToken is a Cloudflare API token with Zone.DNS edit permission on
	// the zone. Required.
	APIToken Secret
	// ZoneID is the Cloudflare zone's ID; empty means it is looked up by
	// Zone.
	ZoneID string
	// Zone is the zone's name, used when ZoneID is empty.
	Zone string
	// TTL is the TXT records' TTL in seconds; zero means 120, Cloudflare's
	// shortest outside Enterprise plans.
	TTL int
	// BaseURL overrides the API's URL (tests); empty means Cloudflare's.
	BaseURL string
}

// Cloudflare sets TXT records through the Cloudflare API. It implements
// Provider.
type Cloudflare struct {
	cfg CloudflareConfig
	api *cloudflare.API

	mu     sync.Mutex // guards the fields below
	zoneID string
}

// NewCloudflare validates cfg and returns the provider.
func NewCloudflare(cfg CloudflareConfig) (*Cloudflare, error) {
	if cfg.APIToken == "" {
		return nil, errors.New("acmedns: cloudflare: the API token is empty; create one with Zone.DNS edit permission")
	}
	if cfg.ZoneID == "" && cfg.Zone == "" {
		return nil, errors.New("acmedns: cloudflare: set the zone ID or the zone name")
	}
	if cfg.TTL <= 0 {
		cfg.TTL = 120
	}
	var opts []cloudflare.Option
	if cfg.BaseURL != "" {
		opts = append(opts, cloudflare.BaseURL(cfg.BaseURL))
	}
	api, err := cloudflare.NewWithAPIToken(cfg.APIToken.Reveal(), opts...)
	if err != nil {
		return nil, fmt.Errorf("acmedns: cloudflare: %w", err)
	}
	return &Cloudflare{cfg: cfg, api: api, zoneID: cfg.ZoneID}, nil
}

func (p *Cloudflare) zone() (*cloudflare.ResourceContainer, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.zoneID == "" {
		id, err := p.api.ZoneIDByName(strings.TrimSuffix(p.cfg.Zone, "."))
		if err != nil {
			return nil, fmt.Errorf("acmedns: cloudflare: looking up zone %s: %w (check the name or set the zone ID)", p.cfg.Zone, err)
		}
		p.zoneID = id
	}
	return cloudflare.ZoneIdentifier(p.zoneID), nil
}

// SetTXT creates a TXT record value at name.
func (p *Cloudflare) SetTXT(ctx context.Context, name, value string) error {
	c, err := challengeName(name)
	if err != nil {
		return err
	}
	rc, err := p.zone()
	if err != nil {
		return err
	}
	_, err = p.api.CreateDNSRecord(ctx, rc, cloudflare.CreateDNSRecordParams{
		Type: "TXT", Name: strings.TrimSuffix(c, "."), Content: value, TTL: p.cfg.TTL,
	})
	if err != nil {
		return fmt.Errorf("acmedns: cloudflare: creating TXT %s: %w", c, err)
	}
	return nil
}

// DeleteTXT deletes the TXT records value at name.
func (p *Cloudflare) DeleteTXT(ctx context.Context, name, value string) error {
	c, err := challengeName(name)
	if err != nil {
		return err
	}
	rc, err := p.zone()
	if err != nil {
		return err
	}
	recs, _, err := p.api.ListDNSRecords(ctx, rc, cloudflare.ListDNSRecordsParams{
		Type: "TXT", Name: strings.TrimSuffix(c, "."), Content: value,
	})
	if err != nil {
		return fmt.Errorf("acmedns: cloudflare: listing TXT %s: %w", c, err)
	}
	for _, r := range recs {
		if r.Content != value && r.Content != `"`+value+`"` {
			continue
		}
		if err := p.api.DeleteDNSRecord(ctx, rc, r.ID); err != nil {
			return fmt.Errorf("acmedns: cloudflare: deleting TXT %s (record %s): %w", c, r.ID, err)
		}
	}
	return nil
}
