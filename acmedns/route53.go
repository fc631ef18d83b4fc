package acmedns

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	"github.com/aws/aws-sdk-go-v2/service/route53/types"
)

// Route53Config configures the Route53 provider.
type Route53Config struct {
	// HostedZoneID is the hosted zone's ID. Required.
	HostedZoneID string
	// AccessKeyID and SecretAccessKey (and SessionToken for temporary
	// credentials) authenticate; an empty AccessKeyID means the AWS SDK's
	// default chain (AWS_* environment variables, shared config, instance
	// role).
	AccessKeyID     string
	SecretAccessKey Secret
	SessionToken    Secret
	// Region is the signing region; empty means us-east-1 (Route53 is
	// global).
	Region string
	// TTL is the TXT set's TTL; zero means DefaultTTL.
	TTL time.Duration
	// PropagationTimeout bounds the wait for a change to be INSYNC; zero
	// means 2 minutes.
	PropagationTimeout time.Duration
	// Endpoint overrides the API's URL (tests); empty means AWS's.
	Endpoint string
}

// Route53 sets TXT records through the AWS Route53 API. It implements
// Provider.
type Route53 struct {
	cfg    Route53Config
	client *route53.Client

	mu sync.Mutex // serializes the read-modify-write of record sets
}

// NewRoute53 validates cfg and returns the provider.
func NewRoute53(ctx context.Context, cfg Route53Config) (*Route53, error) {
	if cfg.HostedZoneID == "" {
		return nil, errors.New("acmedns: route53: the hosted zone ID is empty")
	}
	if cfg.AccessKeyID != "" && cfg.SecretAccessKey == "" {
		return nil, errors.New("acmedns: route53: an access key ID is set but the secret access key is empty")
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.PropagationTimeout <= 0 {
		cfg.PropagationTimeout = 2 * time.Minute
	}
	var creds aws.CredentialsProvider
	if cfg.AccessKeyID != "" {
		creds = credentials.NewStaticCredentialsProvider(cfg.AccessKeyID, cfg.SecretAccessKey.Reveal(), cfg.SessionToken.Reveal())
	} else {
		awsCfg, err := config.LoadDefaultConfig(ctx, config.WithRegion(cfg.Region))
		if err != nil {
			return nil, fmt.Errorf("acmedns: route53: loading the default AWS credentials: %w", err)
		}
		creds = awsCfg.Credentials
	}
	opts := route53.Options{Region: cfg.Region, Credentials: creds}
	if cfg.Endpoint != "" {
		opts.BaseEndpoint = aws.String(cfg.Endpoint)
	}
	return &Route53{cfg: cfg, client: route53.New(opts)}, nil
}

// SetTXT adds value to the TXT set at name and waits until it is INSYNC.
func (p *Route53) SetTXT(ctx context.Context, name, value string) error {
	return p.change(ctx, name, value, true)
}

// DeleteTXT removes value from the TXT set at name.
func (p *Route53) DeleteTXT(ctx context.Context, name, value string) error {
	return p.change(ctx, name, value, false)
}

func (p *Route53) change(ctx context.Context, name, value string, add bool) error {
	c, err := challengeName(name)
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	cur, curTTL, err := p.current(ctx, c)
	if err != nil {
		return err
	}
	quoted := strconv.Quote(value)
	next := slices.DeleteFunc(slices.Clone(cur), func(v string) bool { return v == quoted })
	if add {
		next = append(next, quoted)
	}
	if slices.Equal(cur, next) {
		return nil
	}
	action, values, ttl := types.ChangeActionUpsert, next, int64(p.cfg.TTL.Seconds())
	if len(next) == 0 {
		// A DELETE must match the set exactly, TTL included.
		action, values, ttl = types.ChangeActionDelete, cur, curTTL
	}
	var rrs []types.ResourceRecord
	for _, v := range values {
		rrs = append(rrs, types.ResourceRecord{Value: aws.String(v)})
	}
	out, err := p.client.ChangeResourceRecordSets(ctx, &route53.ChangeResourceRecordSetsInput{
		HostedZoneId: aws.String(p.cfg.HostedZoneID),
		ChangeBatch: &types.ChangeBatch{Changes: []types.Change{{
			Action: action,
			ResourceRecordSet: &types.ResourceRecordSet{
				Name: aws.String(c), Type: types.RRTypeTxt,
				TTL: aws.Int64(ttl), ResourceRecords: rrs,
			},
		}}},
	})
	if err != nil {
		return fmt.Errorf("acmedns: route53: %s TXT %s in zone %s: %w", strings.ToLower(string(action)), c, p.cfg.HostedZoneID, err)
	}
	if !add {
		return nil
	}
	w := route53.NewResourceRecordSetsChangedWaiter(p.client, func(o *route53.ResourceRecordSetsChangedWaiterOptions) {
		o.MinDelay = time.Second
	})
	if err := w.Wait(ctx, &route53.GetChangeInput{Id: out.ChangeInfo.Id}, p.cfg.PropagationTimeout); err != nil {
		return fmt.Errorf("acmedns: route53: waiting for TXT %s to be in sync: %w", c, err)
	}
	return nil
}

// current returns the quoted values and the TTL of the TXT set at name.
func (p *Route53) current(ctx context.Context, name string) ([]string, int64, error) {
	out, err := p.client.ListResourceRecordSets(ctx, &route53.ListResourceRecordSetsInput{
		HostedZoneId:    aws.String(p.cfg.HostedZoneID),
		StartRecordName: aws.String(name),
		StartRecordType: types.RRTypeTxt,
		MaxItems:        aws.Int32(1),
	})
	if err != nil {
		return nil, 0, fmt.Errorf("acmedns: route53: reading TXT %s in zone %s: %w", name, p.cfg.HostedZoneID, err)
	}
	var vals []string
	var ttl int64
	for _, set := range out.ResourceRecordSets {
		if !strings.EqualFold(strings.TrimSuffix(aws.ToString(set.Name), "."), strings.TrimSuffix(name, ".")) || set.Type != types.RRTypeTxt {
			continue
		}
		ttl = aws.ToInt64(set.TTL)
		for _, rr := range set.ResourceRecords {
			vals = append(vals, aws.ToString(rr.Value))
		}
	}
	return vals, ttl, nil
}
