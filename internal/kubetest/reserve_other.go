//go:build !linux

package kubetest

// reservePort returns a port that was free a moment ago; elsewhere it is not held until the API server binds it.
func reservePort() (int, func(), error) {
	ports, err := freePorts(1)
	if err != nil {
		return 0, nil, err
	}
	return ports[0], func() {}, nil
}
