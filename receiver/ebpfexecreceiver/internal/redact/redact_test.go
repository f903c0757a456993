package redact

import (
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestArgs(t *testing.T) {
	tests := []struct {
		name string
		in   []string
		want []string // nil: unchanged
		n    int
	}{
		// key=value
		{"password=", []string{"app", "--password=hunter2"}, []string{"app", "--password=****"}, 1},
		{"single dash java prop", []string{"java", "-Djavax.net.ssl.keyStorePassword=s3cr3t", "-jar", "x.jar"}, []string{"java", "-Djavax.net.ssl.keyStorePassword=****", "-jar", "x.jar"}, 1},
		{"token=", []string{"app", "token=abc123"}, []string{"app", "token=****"}, 1},
		{"secret=", []string{"app", "--client-secret=abc"}, []string{"app", "--client-secret=****"}, 1},
		{"key= env style", []string{"env", "key=abc"}, []string{"env", "key=****"}, 1},
		{"apikey=", []string{"app", "apikey=abc"}, []string{"app", "apikey=****"}, 1},
		{"api_key=", []string{"app", "--api_key=abc"}, []string{"app", "--api_key=****"}, 1},
		{"access_key=", []string{"app", "access_key=abc"}, []string{"app", "access_key=****"}, 1},
		{"passwd", []string{"app", "passwd=abc"}, []string{"app", "passwd=****"}, 1},
		{"aws secret env", []string{"env", "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "aws", "s3", "ls"},
			[]string{"env", "AWS_SECRET_ACCESS_KEY=****", "aws", "s3", "ls"}, 1},
		{"aws session token env", []string{"env", "AWS_SESSION_TOKEN=IQoJb3JpZ2luX2Vj"}, []string{"env", "AWS_SESSION_TOKEN=****"}, 1},
		{"docker -e", []string{"docker", "run", "-e", "DB_PASSWORD=pa ss;w&rd", "img"}, []string{"docker", "run", "-e", "DB_PASSWORD=****", "img"}, 1},
		{"helm --set", []string{"helm", "install", "--set", "auth.password=x1", "r", "c"}, []string{"helm", "install", "--set", "auth.password=****", "r", "c"}, 1},
		{"query string", []string{"curl", "https://api.example/v1?user=bob&token=abc&x=1"}, []string{"curl", "https://api.example/v1?user=bob&token=****&x=1"}, 1},
		{"libpq conninfo", []string{"psql", "host=db user=app password=pw1 dbname=prod"}, []string{"psql", "host=db user=app password=**** dbname=prod"}, 1},
		{"ado connection string", []string{"app", "Server=db;User Id=sa;Password=Pw1;Database=x"}, []string{"app", "Server=db;User Id=sa;Password=****;Database=x"}, 1},
		{"quoted value inside sh -c", []string{"sh", "-c", `run --password="a b c" --x`}, []string{"sh", "-c", `run --password="****" --x`}, 1},
		{"sh -c script", []string{"sh", "-c", "mysql --password=pw -h db && echo ok"}, []string{"sh", "-c", "mysql --password=**** -h db && echo ok"}, 1},
		{"JAVA_OPTS in one arg", []string{"env", "JAVA_OPTS=-Xmx1g -Dapp.secret=zz -Dx=1"}, []string{"env", "JAVA_OPTS=-Xmx1g -Dapp.secret=**** -Dx=1"}, 1},

		// flag followed by its value
		{"--password value", []string{"app", "--password", "hunter2", "-v"}, []string{"app", "--password", "****", "-v"}, 1},
		{"--token value", []string{"kubectl", "--token", "eyJhbGciOi", "get", "pods"}, []string{"kubectl", "--token", "****", "get", "pods"}, 1},
		{"-password single dash", []string{"keytool", "-storepass", "changeit", "-list"}, []string{"keytool", "-storepass", "****", "-list"}, 1},
		{"--api-key value", []string{"app", "--api-key", "k1"}, []string{"app", "--api-key", "****"}, 1},
		{"--cookie value", []string{"curl", "--cookie", "session=abc", "https://x"}, []string{"curl", "--cookie", "****", "https://x"}, 1},
		{"--oauth2-bearer", []string{"curl", "--oauth2-bearer", "tok", "https://x"}, []string{"curl", "--oauth2-bearer", "****", "https://x"}, 1},
		{"flag then another flag: boolean", []string{"psql", "--password", "-h", "db"}, nil, 0},
		{"flag at the end", []string{"app", "--password"}, nil, 0},

		// headers
		{"curl -H authorization bearer", []string{"curl", "-H", "Authorization: Bearer abc.def", "https://x"}, []string{"curl", "-H", "Authorization: Bearer ****", "https://x"}, 1},
		{"authorization basic", []string{"curl", "-H", "authorization:Basic dXNlcjpwYXNz"}, []string{"curl", "-H", "authorization:Basic ****"}, 1},
		{"authorization no scheme", []string{"curl", "-H", "Authorization: abc"}, []string{"curl", "-H", "Authorization: ****"}, 1},
		{"proxy-authorization", []string{"curl", "--header=Proxy-Authorization: Basic abc"}, []string{"curl", "--header=Proxy-Authorization: Basic ****"}, 1},
		{"git extraHeader", []string{"git", "-c", "http.extraHeader=Authorization: Bearer ghtok", "fetch"}, []string{"git", "-c", "http.extraHeader=Authorization: Bearer ****", "fetch"}, 1},
		{"authorization in sh -c, quoted", []string{"sh", "-c", "curl -H 'Authorization: Bearer abc' https://x/y"}, []string{"sh", "-c", "curl -H 'Authorization: Bearer ****' https://x/y"}, 1},
		{"x-api-key header", []string{"curl", "-H", "X-Api-Key: k123"}, []string{"curl", "-H", "X-Api-Key: ****"}, 1},
		{"cookie header", []string{"curl", "-H", "Cookie: sid=1"}, []string{"curl", "-H", "Cookie: ****"}, 1},
		{"bearer without header", []string{"app", "--header-value", "Bearer abc"}, []string{"app", "--header-value", "Bearer ****"}, 1},
		{"benign header", []string{"curl", "-H", "Accept: application/json"}, nil, 0},

		// URLs
		{"url user:password", []string{"git", "clone", "https://bob:pw123@git.example/r.git"}, []string{"git", "clone", "https://bob:****@git.example/r.git"}, 1},
		{"url empty user", []string{"redis-cli", "-u", "redis://:pw@cache:6379/0"}, []string{"redis-cli", "-u", "redis://:****@cache:6379/0"}, 1},
		{"url in a flag value", []string{"app", "--db=postgres://u:p%40ss@db/x"}, []string{"app", "--db=postgres://u:****@db/x"}, 1},
		{"url user only", []string{"git", "clone", "ssh://git@host/r.git"}, nil, 0},
		{"url without userinfo, @ in path", []string{"npm", "i", "https://registry.example/@scope/pkg"}, nil, 0},

		// shapes
		{"aws access key id", []string{"aws", "configure", "set", "aws_access_key_id", "AKIAIOSFODNN7EXAMPLE"}, []string{"aws", "configure", "set", "aws_access_key_id", "AKIA****"}, 1},
		{"aws temporary key id inside text", []string{"echo", "id=ASIAY34FZKBOKMUTVV7A,"}, []string{"echo", "id=ASIA****,"}, 1},
		{"github token as url user", []string{"git", "push", "https://ghp_" + strings.Repeat("a1B2", 9) + "@github.com/o/r.git"}, []string{"git", "push", "https://ghp_****@github.com/o/r.git"}, 1},
		{"github fine-grained token", []string{"env", "GH=github_pat_11ABCDEFG0123456789_abcdefghijklmnop"}, []string{"env", "GH=github_pat_****"}, 1},
		{"short ghp_ is not a token", []string{"echo", "ghp_abc"}, nil, 0},
		{"gitlab token in url user", []string{"git", "clone", "https://oauth2:glpat-abcdefghij0123456789@gitlab.example/r"}, []string{"git", "clone", "https://oauth2:****@gitlab.example/r"}, 1},
		{"openssl pass:", []string{"openssl", "pkcs12", "-passin", "pass:hunter2", "-passout", "pass:x"}, []string{"openssl", "pkcs12", "-passin", "pass:****", "-passout", "pass:****"}, 2},

		// command-specific short flags
		{"mysql -p attached", []string{"mysql", "-uroot", "-phunter2", "mydb"}, []string{"mysql", "-uroot", "-p****", "mydb"}, 1},
		{"mysql -p prompts", []string{"/usr/bin/mysql", "-u", "root", "-p", "mydb"}, nil, 0},
		{"sshpass -p", []string{"sshpass", "-p", "pw", "ssh", "host"}, []string{"sshpass", "-p", "****", "ssh", "host"}, 1},
		{"sshpass -p attached", []string{"sshpass", "-ppw", "ssh", "host"}, []string{"sshpass", "-p****", "ssh", "host"}, 1},
		{"curl -u", []string{"curl", "-u", "bob:pw", "https://x"}, []string{"curl", "-u", "bob:****", "https://x"}, 1},
		{"curl --user attached", []string{"curl", "-ubob:pw", "https://x"}, []string{"curl", "-ubob:****", "https://x"}, 1},
		{"curl -u user only", []string{"curl", "-u", "bob", "https://x"}, nil, 0},
		{"redis-cli -a", []string{"redis-cli", "-a", "pw", "ping"}, []string{"redis-cli", "-a", "****", "ping"}, 1},

		// must not be redacted
		{"gcc", []string{"gcc", "-O2", "-pthread", "-pipe", "-DKEY_SIZE=32", "-o", "main", "main.c"}, nil, 0},
		{"mkdir -p", []string{"mkdir", "-p", "/tmp/x"}, nil, 0},
		{"ssh -p", []string{"ssh", "-p", "2222", "user@host"}, nil, 0},
		{"docker -p -u", []string{"docker", "run", "-p", "80:80", "-u", "1000:1000", "img"}, nil, 0},
		{"--key is a file", []string{"curl", "--key", "client.key", "--cert", "client.pem", "https://x"}, nil, 0},
		{"--key=file", []string{"openssl", "--key=/etc/ssl/k.pem"}, nil, 0},
		{"sort key", []string{"sort", "--sort-key=name", "primary_key=id"}, nil, 0},
		{"token file", []string{"app", "--token-file", "/var/run/secrets/token"}, nil, 0},
		{"no-password", []string{"pg_dump", "--no-password", "mydb"}, nil, 0},
		{"ask-become-pass", []string{"ansible-playbook", "--ask-become-pass", "site.yml"}, nil, 0},
		{"password-stdin", []string{"docker", "login", "--password-stdin", "registry"}, nil, 0},
		{"max tokens", []string{"llm", "max_tokens=100"}, nil, 0},
		{"monkey keyboard", []string{"echo", "monkey", "keyboard", "author", "bypass"}, nil, 0},
		{"empty value", []string{"app", "--password="}, nil, 0},
		{"already masked", []string{"app", "--password=****"}, nil, 0},
		{"short AKIA lookalike", []string{"echo", "AKIAIOSFODNN7EXAMPL"}, nil, 0},
		{"long AKIA lookalike", []string{"echo", "AKIAIOSFODNN7EXAMPLEX"}, nil, 0},
		{"asia region", []string{"gcloud", "--region=asia-east1"}, nil, 0},
		{"empty argv", nil, nil, 0},
		{"utf-8 around secret", []string{"app", "mot_de_passe=é", "--password=пароль", "日本"}, []string{"app", "mot_de_passe=é", "--password=****", "日本"}, 1},
	}
	r, err := New(true, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := slices.Clone(tt.in)
			n := r.Args(args)
			want := tt.want
			if want == nil {
				want = tt.in
			}
			if !slices.Equal(args, want) {
				t.Errorf("Args(%q)\n got  %q\n want %q", tt.in, args, want)
			}
			if n != tt.n {
				t.Errorf("Args(%q) = %d redacted, want %d", tt.in, n, tt.n)
			}
		})
	}
}

// TestSecretsNowhere checks the raw secrets appear in no output argument,
// nor in the command line built from them.
func TestSecretsNowhere(t *testing.T) {
	const s1, s2, s3, s4 = "Zq8xSECRETONE", "Wv2xSECRETTWO", "Pp5xSECRETTHREE", "Kk7xSECRETFOUR"
	argv := []string{
		"sh", "-c",
		"curl -H 'Authorization: Bearer " + s1 + "' https://u:" + s2 + "@h/?token=" + s3,
		"--password", s4,
		"DB_PASSWORD=" + s1, "https://bob:" + s2 + "@x", "--api-key=" + s3,
	}
	r, err := New(true, nil)
	if err != nil {
		t.Fatal(err)
	}
	r.Args(argv)
	line := strings.Join(argv, " ")
	for _, s := range []string{s1, s2, s3, s4} {
		if strings.Contains(line, s) {
			t.Errorf("secret %q survives in %q", s, line)
		}
	}
	for _, keep := range []string{"Authorization: Bearer ", "https://bob:", "--api-key=", "DB_PASSWORD="} {
		if !strings.Contains(line, keep) {
			t.Errorf("%q was lost from %q", keep, line)
		}
	}
}

func TestExtraPatterns(t *testing.T) {
	r, err := New(true, []string{`(?i)employee-id=(\d+)`, `sk_live_[0-9a-zA-Z]{8,}`, `x*`})
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"app", "EMPLOYEE-ID=12345", "pay", "sk_live_abcdefgh12", "benign"}
	n := r.Args(args)
	want := []string{"app", "EMPLOYEE-ID=****", "pay", "****", "benign"}
	if !slices.Equal(args, want) || n != 2 {
		t.Errorf("got %q (%d), want %q (2)", args, n, want)
	}
	if _, err := New(true, []string{"ok", "("}); err == nil || !strings.Contains(err.Error(), "pattern 1") {
		t.Errorf("New with an invalid pattern: err = %v, want one naming pattern 1", err)
	}
}

func TestDisabled(t *testing.T) {
	for name, r := range map[string]*Redactor{"nil": nil, "disabled": mustNew(t, false, []string{"."})} {
		args := []string{"app", "--password=x"}
		if n := r.Args(args); n != 0 || args[1] != "--password=x" {
			t.Errorf("%s: Args changed %q (%d)", name, args, n)
		}
		if r.Enabled() {
			t.Errorf("%s: Enabled() = true", name)
		}
	}
}

func TestBenignArgsDoNotAllocate(t *testing.T) {
	r := mustNew(t, true, nil)
	for _, args := range [][]string{
		benignArgv(),
		{"sh", "-c", "mkdir -p /out && cp -a build/. /out && sudo -u ci make -C /src install"}, // walked, nothing masked
		{"docker", "run", "--name", "mongo", "-p", "27017:27017", "mongo:7"},
	} {
		if n := testing.AllocsPerRun(100, func() { r.Args(args) }); n != 0 {
			t.Errorf("Args(%q) allocates %v times, want 0", args, n)
		}
	}
}

func mustNew(t testing.TB, enabled bool, patterns []string) *Redactor {
	t.Helper()
	r, err := New(enabled, patterns)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func benignArgv() []string {
	return []string{"/usr/bin/gcc", "-O2", "-g", "-Wall", "-Wextra", "-fPIC", "-I/usr/include/foo",
		"-DNDEBUG", "-c", "src/module/file_with_a_long_name.c", "-o", "build/obj/file_with_a_long_name.o"}
}

func BenchmarkArgs(b *testing.B) {
	r := mustNew(b, true, nil)
	cases := map[string][]string{
		"benign": benignArgv(),
		"secret": {"curl", "-sS", "-H", "Authorization: Bearer abcdef0123456789", "-u", "bob:pw",
			"https://user:pw@api.example/v1/items?limit=10&token=abc", "--data", "{}"},
		"build-script": {"/bin/sh", "-c", "cd /src/project && ./configure --prefix=/usr --enable-shared && make -j4 CFLAGS='-O2 -g' && make install DESTDIR=/tmp/pkg"},
		"wrapped":      {"sudo", "-E", "docker", "exec", "-i", "db", "mysql", "-uroot", "-phunter2", "-e", "select 1"},
		"json":         {"curl", "-sS", "-X", "POST", "-H", "Content-Type: application/json", "-d", `{"user":"bob","password":"hunter2","remember":true}`, "https://api.example/login"},
	}
	for name, argv := range cases {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			args := make([]string, len(argv))
			for b.Loop() {
				copy(args, argv)
				r.Args(args)
			}
		})
	}
}

func FuzzArgs(f *testing.F) {
	f.Add("curl\x00-H\x00Authorization: Bearer x\x00https://u:p@h/?token=t&a=b")
	f.Add("mysql\x00-pSECRET\x00--password\x00pw\x00AKIAIOSFODNN7EXAMPLE")
	f.Add("sh\x00-c\x00run --password=\"a b\" 'Authorization: x'")
	f.Add("app\x00pass:\x00key=\x00=\x00://@:\x00Bearer ")
	r := mustNew(f, true, []string{`(\d{4})-\d{4}`})
	f.Fuzz(func(t *testing.T, joined string) {
		args := strings.Split(joined, "\x00")
		valid := utf8.ValidString(joined)
		n := r.Args(args)
		if n < 0 || n > len(args) {
			t.Fatalf("Args returned %d for %d args", n, len(args))
		}
		if valid {
			for _, a := range args {
				if !utf8.ValidString(a) {
					t.Fatalf("valid input %q gave invalid UTF-8 %q", joined, a)
				}
			}
		}
		// Idempotent: masking the output again changes nothing it already
		// masked into something else.
		again := slices.Clone(args)
		r.Args(again)
		for i := range args {
			if strings.Count(again[i], Mask) < strings.Count(args[i], Mask) {
				t.Fatalf("second pass lost a mask: %q → %q", args[i], again[i])
			}
		}
	})
}
