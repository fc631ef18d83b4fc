package replica

// Pending logins live in the store (package login), so any replica may
// complete one; the store notifies store.NotifyLogin when one ends, and
// the replica holding the client's wait reads it again. OnLogin is that
// hook; after (re)connecting the listener every wait reads again, as a
// notification may have been missed meanwhile.

// OnLogin sets what a login ended on another replica runs, with its ID
// ("" for every login): the login manager's Changed.
func (r *Replica) OnLogin(f func(id string)) {
	r.mu.Lock()
	r.onLogin = f
	r.mu.Unlock()
}

// loginChanged runs the OnLogin hook, if set.
func (r *Replica) loginChanged(id string) {
	r.mu.Lock()
	f := r.onLogin
	r.mu.Unlock()
	if f != nil {
		f(id)
	}
}
