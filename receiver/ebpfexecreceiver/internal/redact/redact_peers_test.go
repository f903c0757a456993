package redact

import (
	"slices"
	"strings"
	"testing"
)

// TestArgsSecretsPeersMask covers secrets that the redaction rules of peers
// mask (Datadog's process argument scrubber, gitleaks' patterns) and that
// passed through before: password flags of more programs, the same
// programs behind wrappers and inside shell strings, JSON bodies, tokens as
// URL users, "set KEY VALUE", user:password credentials, values that start
// with '-', and well-known token shapes. Every case names its raw secrets:
// none may remain anywhere in the output, while keys, flags and header
// names stay.
func TestArgsSecretsPeersMask(t *testing.T) {
	const (
		jwt    = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
		jwtHdr = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
		awsID  = "AKIAIOSFODNN7EXAMPLE"
		awsKey = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
		pem    = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\n-----END OPENSSH PRIVATE KEY-----"
	)
	tests := []struct {
		name    string
		in      []string
		want    []string // nil: unchanged
		secrets []string // raw secrets that must not survive
	}{
		// Password flags of more programs.
		{"docker login -p", []string{"docker", "login", "-u", "bob", "-p", "Dk1pw", "registry.example"},
			[]string{"docker", "login", "-u", "bob", "-p", "****", "registry.example"}, []string{"Dk1pw"}},
		{"docker login -p attached", []string{"docker", "login", "-pDk1pw", "r.example"}, []string{"docker", "login", "-p****", "r.example"}, []string{"Dk1pw"}},
		{"podman login -p", []string{"/usr/bin/podman", "login", "--username", "bob", "-p", "Pd1pw", "quay.io"},
			[]string{"/usr/bin/podman", "login", "--username", "bob", "-p", "****", "quay.io"}, []string{"Pd1pw"}},
		{"helm registry login -p", []string{"helm", "registry", "login", "-u", "u", "-p", "Hl1pw", "r"}, []string{"helm", "registry", "login", "-u", "u", "-p", "****", "r"}, []string{"Hl1pw"}},
		{"mongo -p", []string{"mongo", "-u", "admin", "-p", "Mg1pw", "--authenticationDatabase", "admin"},
			[]string{"mongo", "-u", "admin", "-p", "****", "--authenticationDatabase", "admin"}, []string{"Mg1pw"}},
		{"mongosh -p attached", []string{"mongosh", "-uadmin", "-pMg1pw"}, []string{"mongosh", "-uadmin", "-p****"}, []string{"Mg1pw"}},
		{"ldapsearch -w", []string{"ldapsearch", "-x", "-D", "cn=admin,dc=ex", "-w", "Ld1pw", "-b", "dc=ex"},
			[]string{"ldapsearch", "-x", "-D", "cn=admin,dc=ex", "-w", "****", "-b", "dc=ex"}, []string{"Ld1pw"}},
		{"ldapmodify -w attached", []string{"ldapmodify", "-wLd1pw", "-f", "x.ldif"}, []string{"ldapmodify", "-w****", "-f", "x.ldif"}, []string{"Ld1pw"}},
		{"ldappasswd -s -a", []string{"ldappasswd", "-a", "Old1pw", "-s", "New1pw", "uid=bob"}, []string{"ldappasswd", "-a", "****", "-s", "****", "uid=bob"}, []string{"Old1pw", "New1pw"}},
		{"smbclient -U user%pw", []string{"smbclient", "//srv/share", "-U", "bob%Sm1pw"}, []string{"smbclient", "//srv/share", "-U", "bob%****"}, []string{"Sm1pw"}},
		{"sqlcmd -P", []string{"sqlcmd", "-S", "db", "-U", "sa", "-P", "Sq1pw"}, []string{"sqlcmd", "-S", "db", "-U", "sa", "-P", "****"}, []string{"Sq1pw"}},
		{"zip -P", []string{"zip", "-r", "-P", "Zp1pw", "out.zip", "dir"}, []string{"zip", "-r", "-P", "****", "out.zip", "dir"}, []string{"Zp1pw"}},
		{"7z -p", []string{"7z", "a", "-pSz1pw", "out.7z", "dir"}, []string{"7z", "a", "-p****", "out.7z", "dir"}, []string{"Sz1pw"}},

		// The same programs behind wrappers.
		{"sudo mysql", []string{"sudo", "-E", "mysql", "-uroot", "-pMy1pw"}, []string{"sudo", "-E", "mysql", "-uroot", "-p****"}, []string{"My1pw"}},
		{"sudo -u docker login", []string{"sudo", "-u", "ci", "docker", "login", "-p", "Dk2pw"}, []string{"sudo", "-u", "ci", "docker", "login", "-p", "****"}, []string{"Dk2pw"}},
		{"docker exec mysql", []string{"docker", "exec", "-i", "db", "mysql", "-uroot", "-pMy2pw", "-e", "select 1"},
			[]string{"docker", "exec", "-i", "db", "mysql", "-uroot", "-p****", "-e", "select 1"}, []string{"My2pw"}},
		{"kubectl exec -- mongo", []string{"kubectl", "exec", "-it", "mongo-0", "--", "mongo", "-u", "admin", "-p", "Mg2pw"},
			[]string{"kubectl", "exec", "-it", "mongo-0", "--", "mongo", "-u", "admin", "-p", "****"}, []string{"Mg2pw"}},
		{"env ldapsearch", []string{"env", "LANG=C", "/usr/bin/ldapsearch", "-w", "Ld2pw"}, []string{"env", "LANG=C", "/usr/bin/ldapsearch", "-w", "****"}, []string{"Ld2pw"}},
		{"sh -c mysql", []string{"sh", "-c", "mysql -uroot -pMy3pw -e 'select 1'"}, []string{"sh", "-c", "mysql -uroot -p**** -e 'select 1'"}, []string{"My3pw"}},
		{"bash -lc docker login", []string{"bash", "-lc", "echo hi && docker login -u bob -p Dk3pw reg"},
			[]string{"bash", "-lc", "echo hi && docker login -u bob -p **** reg"}, []string{"Dk3pw"}},
		{"sh -c --password value", []string{"sh", "-c", "app --password Ap1pw --verbose; ls"}, []string{"sh", "-c", "app --password **** --verbose; ls"}, []string{"Ap1pw"}},
		{"sh -c quoted value", []string{"sh", "-c", `app --token "Tk1 tk2" run`}, []string{"sh", "-c", `app --token "****" run`}, []string{"Tk1 tk2"}},
		{"kubectl exec -- sh -c ldapsearch", []string{"kubectl", "exec", "p", "--", "sh", "-c", "ldapsearch -x -w Ld3pw -b dc=ex"},
			[]string{"kubectl", "exec", "p", "--", "sh", "-c", "ldapsearch -x -w **** -b dc=ex"}, []string{"Ld3pw"}},
		{"ssh host nested quotes", []string{"ssh", "host", "sh -c 'mongosh -u a -p Mg3pw'"}, []string{"ssh", "host", "sh -c 'mongosh -u a -p ****'"}, []string{"Mg3pw"}},
		{"su -c sshpass", []string{"su", "-c", "sshpass -p Ss1pw ssh host", "bob"}, []string{"su", "-c", "sshpass -p **** ssh host", "bob"}, []string{"Ss1pw"}},

		// JSON bodies.
		{"json body", []string{"curl", "-d", `{"user":"bob","password":"Js1pw"}`, "https://x"},
			[]string{"curl", "-d", `{"user":"bob","password":"****"}`, "https://x"}, []string{"Js1pw"}},
		{"json spaces and numbers", []string{"curl", "--data-raw", `{ "client_secret" : "Js2 pw", "api_key": 123456, "remember": true }`},
			[]string{"curl", "--data-raw", `{ "client_secret" : "****", "api_key": ****, "remember": true }`}, []string{"Js2 pw", "123456"}},
		{"json nested object", []string{"app", `{"credentials":{"user":"a","pw":"Js3pw"},"n":1}`}, []string{"app", `{"credentials":****,"n":1}`}, []string{"Js3pw"}},
		{"json array", []string{"app", `{"secret":["Js4a","Js4b"]}`}, []string{"app", `{"secret":****}`}, []string{"Js4a", "Js4b"}},
		{"python dict", []string{"python3", "-c", `login({'username': 'bob', 'password': 'Js5pw'})`},
			[]string{"python3", "-c", `login({'username': 'bob', 'password': '****'})`}, []string{"Js5pw"}},
		{"escaped json in sh -c", []string{"sh", "-c", `curl -d "{\"token\":\"Js6pw\"}" https://x`},
			[]string{"sh", "-c", `curl -d "{\"token\":\"****\"}" https://x`}, []string{"Js6pw"}},

		// A token as the URL user.
		{"token url user", []string{"git", "clone", "https://0123456789abcdef0123456789abcdef01234567@github.com/o/r.git"},
			[]string{"git", "clone", "https://****@github.com/o/r.git"}, []string{"0123456789abcdef0123456789abcdef01234567"}},
		{"token url user with password", []string{"git", "clone", "https://AbCdEf0123456789XyZw1@h/r:x-oauth-basic"},
			[]string{"git", "clone", "https://****@h/r:x-oauth-basic"}, []string{"AbCdEf0123456789XyZw1"}},
		{"token user and x-oauth-basic", []string{"git", "fetch", "https://AbCdEf0123456789XyZw1:x-oauth-basic@github.com/o/r"},
			[]string{"git", "fetch", "https://****:****@github.com/o/r"}, []string{"AbCdEf0123456789XyZw1"}},

		// set KEY VALUE, user:password credentials, more key names.
		{"aws configure set secret", []string{"aws", "configure", "set", "aws_secret_access_key", "Aw1secret"},
			[]string{"aws", "configure", "set", "aws_secret_access_key", "****"}, []string{"Aw1secret"}},
		{"aws configure set token with profile", []string{"aws", "configure", "--profile", "p", "set", "aws_session_token", "Aw2tok"},
			[]string{"aws", "configure", "--profile", "p", "set", "aws_session_token", "****"}, []string{"Aw2tok"}},
		{"npm config set authToken", []string{"npm", "config", "set", "//registry.npmjs.org/:_authToken", "Np1tok"},
			[]string{"npm", "config", "set", "//registry.npmjs.org/:_authToken", "****"}, []string{"Np1tok"}},
		{"git config password", []string{"git", "config", "--global", "credential.https://h.password", "Gc1pw"},
			[]string{"git", "config", "--global", "credential.https://h.password", "****"}, []string{"Gc1pw"}},
		{"--creds user:pw", []string{"skopeo", "copy", "--creds", "bob:Sk1pw", "docker://a", "docker://b"},
			[]string{"skopeo", "copy", "--creds", "bob:****", "docker://a", "docker://b"}, []string{"Sk1pw"}},
		{"--src-creds=", []string{"skopeo", "copy", "--src-creds=bob:Sk2pw", "--dest-creds=ann:Sk3pw", "a", "b"},
			[]string{"skopeo", "copy", "--src-creds=bob:****", "--dest-creds=ann:****", "a", "b"}, []string{"Sk2pw", "Sk3pw"}},
		{"--dbpass", []string{"app", "--dbpass=Db1pw", "--adminpass", "Db2pw", "--root-pwd", "Db3pw"},
			[]string{"app", "--dbpass=****", "--adminpass", "****", "--root-pwd", "****"}, []string{"Db1pw", "Db2pw", "Db3pw"}},
		{"datadog words", []string{"app", "--mysql_pwd", "Dd1", "--stripetoken", "Dd2", "--auth_token=Dd3", "--apikey", "Dd4", "--access_token", "Dd5"},
			[]string{"app", "--mysql_pwd", "****", "--stripetoken", "****", "--auth_token=****", "--apikey", "****", "--access_token", "****"},
			[]string{"Dd1", "Dd2", "Dd3", "Dd4", "Dd5"}},
		{"colon delimiter", []string{"app", "--password:Cl1pw"}, []string{"app", "--password:****"}, []string{"Cl1pw"}},
		{"value starting with -", []string{"app", "--password", "-Ds1pw!", "-v"}, []string{"app", "--password", "****", "-v"}, []string{"-Ds1pw!"}},
		{"value starting with - after a command flag", []string{"docker", "login", "-p", "-Ds2pw", "r"}, []string{"docker", "login", "-p", "****", "r"}, []string{"-Ds2pw"}},

		// Well-known token shapes.
		{"jwt", []string{"app", "--header-file", "x", jwt}, []string{"app", "--header-file", "x", jwtHdr + "****"}, []string{"SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c", "eyJzdWIiOiIxMjM0NTY3ODkwIn0"}},
		{"jwt in env", []string{"env", "ID=" + jwt, "app"}, []string{"env", "ID=" + jwtHdr + "****", "app"}, []string{"SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"}},
		{"slack bot token", []string{"app", "SLACK=xoxb-1234567890-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx"}, []string{"app", "SLACK=xoxb-****"}, []string{"AbCdEfGhIjKlMnOpQrStUvWx"}},
		{"slack app token", []string{"app", "xapp-1-A0123456789-1234567890123-abcdef0123456789"}, []string{"app", "xapp-****"}, []string{"abcdef0123456789"}},
		{"stripe live key", []string{"echo", "sk_live_51H8abcdefghijklmnopqrstu"}, []string{"echo", "sk_live_****"}, []string{"51H8abcdefghijklmnopqrstu"}},
		{"stripe restricted key", []string{"echo", "rk_test_51H8abcdefghijklmnop"}, []string{"echo", "rk_test_****"}, []string{"51H8abcdefghijklmnop"}},
		{"github pat positional", []string{"gh", "auth", "x", "ghp_" + strings.Repeat("Zz9", 12)}, []string{"gh", "auth", "x", "ghp_****"}, []string{strings.Repeat("Zz9", 12)}},
		{"aws key id and secret, two args", []string{"app", awsID, awsKey}, []string{"app", "AKIA****", "****"}, []string{"IOSFODNN7EXAMPLE", awsKey}},
		{"aws key id:secret, one arg", []string{"app", "--keys", awsID + ":" + awsKey}, []string{"app", "--keys", "AKIA****:****"}, []string{"IOSFODNN7EXAMPLE", awsKey}},
		{"aws pair in sh -c", []string{"sh", "-c", "s3cmd --access_key " + awsID + " --secret_key " + awsKey},
			[]string{"sh", "-c", "s3cmd --access_key **** --secret_key ****"}, []string{"IOSFODNN7EXAMPLE", awsKey}},
		{"pem private key", []string{"app", "--in", pem}, []string{"app", "--in", "-----BEGIN OPENSSH PRIVATE KEY-----****-----END OPENSSH PRIVATE KEY-----"}, []string{"b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ"}},
		{"pem cut off", []string{"app", "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIB"}, []string{"app", "-----BEGIN EC PRIVATE KEY-----****"}, []string{"MHcCAQEEIB"}},
		{"gitleaks shapes", []string{"app",
			"npm_" + strings.Repeat("a1", 18), "AIza" + strings.Repeat("B2c", 12)[:35], "glptt-" + strings.Repeat("0f", 20),
			"hvs." + strings.Repeat("Cc3", 10), "dop_v1_" + strings.Repeat("ab", 32), "sk-proj-" + strings.Repeat("Xy_", 10),
			"sk-ant-api03-" + strings.Repeat("Qq7", 10), "pypi-AgEIcHlwaS5vcmc" + strings.Repeat("Rr8", 15), "SG." + strings.Repeat("Ss9", 22)},
			[]string{"app", "npm_****", "AIza****", "glptt-****", "hvs.****", "dop_v1_****", "sk-proj-****", "sk-ant-****", "pypi-****", "SG.****"},
			[]string{strings.Repeat("a1", 18), strings.Repeat("Xy_", 10), strings.Repeat("Qq7", 10), strings.Repeat("Rr8", 15)}},

		// Still not masked.
		{"docker run -p ports", []string{"docker", "run", "--name", "mongo", "-p", "27017:27017", "mongo:7"}, nil, nil},
		{"docker run -p other", []string{"docker", "run", "-p", "8080:80", "-u", "1000", "nginx"}, nil, nil},
		{"mongosh -p prompts", []string{"mongosh", "-u", "admin", "-p", "--authenticationDatabase", "admin"}, nil, nil},
		{"ldapsearch -W prompts", []string{"ldapsearch", "-x", "-W", "-D", "cn=admin"}, nil, nil},
		{"psql --password prompts", []string{"psql", "--password", "mydb"}, nil, nil},
		{"bypass", []string{"app", "--bypass", "cache", "--compass", "north", "OLDPWD=/home/bob"}, nil, nil},
		{"set non-secret", []string{"aws", "configure", "set", "region", "eu-west-1"}, nil, nil},
		{"redis set key", []string{"redis-cli", "set", "key", "value"}, nil, nil},
		{"json non-secret", []string{"curl", "-d", `{"user":"bob","keyboard":"us","key_id":"k1"}`}, nil, nil},
		{"short url user", []string{"git", "clone", "https://deploy.bot.2024@git.example/r"}, nil, nil},
		{"certificate", []string{"app", "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----"}, nil, nil},
		{"long flag after token flag", []string{"app", "--token", "--verbose"}, nil, nil},
		{"shell without secrets", []string{"sh", "-c", "cd /src && ./configure --prefix=/usr && make -j4"}, nil, nil},
		{"desk task", []string{"echo", "desk-and-task-sk-x", "glibc-2.39", "doc"}, nil, nil},
	}
	r := mustNew(t, true, nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := slices.Clone(tt.in)
			r.Args(args)
			want := tt.want
			if want == nil {
				want = tt.in
			}
			if !slices.Equal(args, want) {
				t.Errorf("Args(%q)\n got  %q\n want %q", tt.in, args, want)
			}
			line := strings.Join(args, "\x00")
			for _, s := range tt.secrets {
				if strings.Contains(line, s) {
					t.Errorf("raw secret %q survives in %q", s, args)
				}
			}
		})
	}
}
