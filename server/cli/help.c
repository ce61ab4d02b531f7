/*
 * berth's usage text and its manual page berth(8), both printed from one table of
 * commands and the configuration's table of keys, so the two cannot drift apart.
 * `berth --help` prints the text; `berth man` prints the page as roff (the build
 * writes it to berth.8 and `make install` installs it). Single-threaded.
 */
#include <stdio.h>
#include <string.h>

#include "cli_int.h"

#include "common/config.h"

struct command_doc {
    const char *synopsis; /* after "berth " */
    const char *help;     /* one or two sentences, shown by --help and the page */
    const char *detail;   /* more, for the page only (NULL: none) */
};

static const struct command_doc commands[] = {
    {"serve [--listen ADDR:PORT]", "serve the registry (default 127.0.0.1:5000)",
     "The OCI distribution API under /v2/, the ECR JSON API, the web console under /ui/, "
     "/healthz, /readyz and /metrics, all on one port. Runs until SIGTERM or SIGINT, then stops "
     "accepting connections, lets requests in "
     "flight finish (up to 30 seconds) and exits 0. SIGHUP reloads the TLS certificate and "
     "key. Serving a non-loopback address is refused unless an access key exists, "
     "auth.required is true, or anonymous is true."},
    {"gc [--dry-run]", "one garbage-collection pass over the store",
     "Deletes blobs that no manifest references and that are older than gc.grace_seconds, "
     "expired upload sessions and temporary files. Safe next to a running server. "
     "--dry-run only reports what would go."},
    {"lifecycle run [--dry-run] [REPOSITORY]",
     "apply lifecycle policies now (every repository with a policy, or one)",
     "Expires images as the background job does, without its delay for new policies. "
     "--dry-run prints what would expire."},
    {"keys create NAME [PERMISSION ...]",
     "make an access key (no PERMISSION: admin) and print AWS_ACCESS_KEY_ID=... "
     "AWS_SECRET_ACCESS_KEY=...",
     "A PERMISSION is pull[:REPO], push[:REPO], delete[:REPO], admin[:REPO] or "
     "ecr:ACTION[=REPO]; REPO is a repository name or ARN pattern with * and ? "
     "(push:team/*). A second key for an existing NAME shares its permissions. The output is shell "
     "assignments: eval it, then "
     "export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY. A running server sees the key at "
     "once."},
    {"keys list", "list access keys (never their secrets)", NULL},
    {"keys delete ACCESS_KEY_ID", "delete an access key", NULL},
    {"scan REPO:TAG|REPO@DIGEST [--json]", "scan an image now and print its findings",
     "Uses the built-in scanner with the records of berth vulndb import, or scan.hook."},
    {"vulndb import PATH",
     "import OSV vulnerability records (a directory, .json, .tar.gz, .tar.zst or .zip); with "
     "PostgreSQL metadata, into the one database all replicas share (run it once)",
     NULL},
    {"export REPO[:TAG|@DIGEST]... -o FILE [--since OLD]",
     "write images (with index children and referrers) as an OCI image layout tar "
     "(.zst: zstd-compressed)",
     "With --since OLD (an earlier bundle), a delta: what OLD holds is left out, every image "
     "is still named."},
    {"mirror [--images FILE] [REF...] -o FILE [--platform OS/ARCH]",
     "pull images straight from their registries into a bundle (no server; "
     "credentials from a docker config.json)",
     "REF is [HOST[:PORT]/]REPO[:TAG|@DIGEST]; --images FILE lists them one a line. Options: "
     "--authfile FILE, --ca-file PEM (the CA certificates trusted for every registry instead of "
     "the system's), --ca-file REGISTRY=PEM (for the registry HOST[:PORT] as the references name "
     "it; repeatable; it wins over the plain one there), --plain-http, --since OLD (a delta), "
     "--parallel N "
     "(images walked and blobs "
     "fetched at once, 4), --progress-interval SECONDS (not on a terminal: a line of totals "
     "this often, 10; 0: none). Referrers come too. Manifests and blobs land in FILE.parts/ first: "
     "an interrupted run, run again, resumes the blobs and fetches no manifest it holds (tags "
     "are asked for again: a moved tag is followed)."},
    {"import [--repo NAME] FILE|DIR...",
     "load bundles (OCI layout directories or tarballs: plain, gzip, zstd; docker save "
     "archives), each verified whole first",
     "Safe next to a running server; importing the same bundle twice changes nothing."},
    {"migrate --from CONFIG --to CONFIG [--force]",
     "copy the whole registry of one configuration's store into another's (filesystem+SQLite "
     "to S3+PostgreSQL and back): blobs with every digest checked, then every metadata row in "
     "one transaction, then every destination blob re-read and the row counts compared",
     "The source may keep serving reads; stop writes to it for the cut-over. Interrupted, "
     "run it again: blobs already in the destination are kept (verified at the end) and the "
     "metadata of an earlier run is replaced, unless berth serve has served the destination "
     "since (its writes would be lost: refused without --force). Refused when the "
     "destination holds another registry's data. Not carried: upload sessions in progress, job "
     "leases, blobs in the "
     "archive tier "
     "(refused: restore them first). Copied after the metadata: the upstream secrets key "
     "file to a destination without one, the signing.profiles_dir key files into the "
     "destination's signing.profiles_dir (refused when it names none or a file differs), "
     "the vulnerability database unless the destination's is as new (into <root>/vulndb.db, "
     "or published as the shared one with PostgreSQL). Each CONFIG file is read as "
     "written; the BERTH_* "
     "environment does not apply to it."},
    {"secrets put NAME|ARN --username USER",
     "store upstream credentials for pull-through cache rules (password on standard input)",
     "NAME is ecr-pullthroughcache/<name> (the prefix is added when missing); put prints the "
     "ARN a rule's credentialArn names. The values are sealed with AES-256-GCM under "
     "pull_through.secrets_key or the key file (<root>/secrets.key, created 0600). A running "
     "server uses a new value on its next fetch."},
    {"secrets list", "list upstream secrets (their ARNs, never their values)", NULL},
    {"secrets delete NAME|ARN", "delete an upstream secret", NULL},
    {"version", "print the version", NULL},
    {"help", "this text", NULL},
    {"man", "print this manual as a roff man page (man -l <(berth man))", NULL},
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))
#define HELP_COLUMN 31
#define HELP_WIDTH 80

/* Print text word-wrapped from column `col` (already reached) to HELP_WIDTH, continuation
 * lines indented to `indent`. */
static void print_wrapped(FILE *f, const char *text, int col, int indent)
{
    const char *p = text;
    bool first = true;
    while (*p) {
        size_t word = strcspn(p, " ");
        if (!first && col + 1 + (int)word > HELP_WIDTH) {
            fprintf(f, "\n%*s", indent, "");
            col = indent;
            first = true;
        }
        if (!first) {
            fputc(' ', f);
            col++;
        }
        fprintf(f, "%.*s", (int)word, p);
        col += (int)word;
        first = false;
        p += word;
        p += strspn(p, " ");
    }
    fputc('\n', f);
}

void cli_usage(FILE *f)
{
    fprintf(f,
            "berth %s: an OCI container registry with Amazon ECR's API\n"
            "\n"
            "usage: berth <command> [--config FILE] [--root DIR] [options]\n"
            "\n"
            "commands:\n",
            BERTH_VERSION);
    for (size_t i = 0; i < NCOMMANDS; i++) {
        int col = fprintf(f, "  %s", commands[i].synopsis);
        if (col > HELP_COLUMN - 2) {
            fprintf(f, "\n%*s", HELP_COLUMN, "");
        } else {
            fprintf(f, "%*s", HELP_COLUMN - col, "");
        }
        print_wrapped(f, commands[i].help, HELP_COLUMN, HELP_COLUMN);
    }
    fprintf(f, "\n"
               "options for every command:\n"
               "  --config FILE   JSON configuration (also $BERTH_CONFIG); see conf/berth.json\n"
               "  --root DIR      data directory (default ./berth-data)\n"
               "\n"
               "Settings apply in this order, later ones winning: built-in defaults, the config\n"
               "file, BERTH_* environment variables, command-line flags. Keys:\n");
    config_print_keys(f);
}

/* Text for a roff line: backslashes and hyphens escaped, and a leading '.' or '\''
 * (a request) or a line break inside neutralised. */
static void roff(FILE *f, const char *text)
{
    if (*text == '.' || *text == '\'') {
        fputs("\\&", f);
    }
    for (const char *p = text; *p; p++) {
        switch (*p) {
        case '\\':
            fputs("\\e", f);
            break;
        case '-':
            fputs("\\-", f);
            break;
        case '\n':
            fputc(' ', f);
            break;
        default:
            fputc(*p, f);
        }
    }
}

static void roff_line(FILE *f, const char *text)
{
    roff(f, text);
    fputc('\n', f);
}

void cli_man(FILE *f)
{
    fprintf(f,
            ".\\\" berth(8), printed by `berth man` from the tables behind `berth --help`\n"
            ".TH BERTH 8 \"\" \"berth %s\" \"System Administration\"\n",
            BERTH_VERSION);
    fputs(".SH NAME\n"
          "berth \\- an OCI container registry with Amazon ECR's API\n"
          ".SH SYNOPSIS\n",
          f);
    for (size_t i = 0; i < NCOMMANDS; i++) {
        fputs(".B berth\n", f);
        roff_line(f, commands[i].synopsis);
        fputs(".br\n", f);
    }
    fputs(".SH DESCRIPTION\n", f);
    roff_line(f, "berth stores container images and other OCI artifacts and serves them to "
                 "docker, podman, skopeo, containerd and other clients over the OCI "
                 "distribution API, and to the AWS CLI and SDKs over Amazon ECR's JSON API. "
                 "Blobs live on disk under the data directory, content-addressed and "
                 "verified; metadata lives in SQLite (or PostgreSQL).");
    fputs(".SH COMMANDS\n", f);
    for (size_t i = 0; i < NCOMMANDS; i++) {
        fputs(".TP\n.B ", f);
        roff_line(f, commands[i].synopsis);
        roff(f, commands[i].help);
        fputs(".\n", f);
        if (commands[i].detail != NULL) {
            roff_line(f, commands[i].detail);
        }
    }
    fputs(".SH OPTIONS\n"
          ".TP\n.BI \\-\\-config \" FILE\"\n"
          "JSON configuration file (also\n.BR $BERTH_CONFIG ).\n"
          ".TP\n.BI \\-\\-root \" DIR\"\n"
          "data directory (the key\n.BR root ).\n"
          ".TP\n.BI \\-\\-listen \" ADDR:PORT\"\n"
          "address and port to serve on (the key\n.BR listen ).\n"
          ".TP\n.BR \\-h \", \" \\-\\-help\n"
          "the usage text, with every configuration key.\n"
          ".SH CONFIGURATION\n",
          f);
    roff_line(f, "Settings apply in this order, later ones winning: built-in defaults, the "
                 "JSON configuration file, BERTH_* environment variables, command-line flags. "
                 "A key's environment variable is BERTH_ followed by its dotted path in upper "
                 "case with _ for each dot. The keys:");
    struct config_key_doc d;
    for (size_t i = 0; config_key_doc(i, &d); i++) {
        fputs(".TP\n.B ", f);
        roff_line(f, d.path);
        if (d.env[0]) {
            fputs(".RB ( ", f);
            roff(f, d.env);
            fputs(" )\n", f);
        } else {
            fputs("(configuration file only)\n", f);
        }
        roff(f, d.help);
        if (*d.def) {
            fputs("; default\n.BR \"", f);
            roff(f, d.def);
            fputs("\" .\n", f);
        } else {
            fputs(".\n", f);
        }
    }
    fputs(".SH SIGNALS\n"
          ".TP\n.BR SIGTERM \", \" SIGINT\n"
          "stop: no new connections, requests in flight finish (up to 30 seconds), exit 0.\n"
          ".TP\n.B SIGHUP\n"
          "reload the TLS certificate and key files; new handshakes use the new pair, a "
          "pair that fails to load leaves the old one in use.\n"
          ".SH EXIT STATUS\n"
          "0 on success, 1 on a failure, 2 on a usage or configuration error.\n"
          ".SH FILES\n"
          ".TP\n.I ROOT/blobs/\n"
          "blobs, by digest.\n"
          ".TP\n.I ROOT/berth.db\n"
          "the SQLite metadata database (mode 0600: it holds access key secrets).\n"
          ".SH EXAMPLES\n"
          ".nf\n"
          "berth serve \\-\\-listen 127.0.0.1:5000 \\-\\-root /var/lib/berth\n"
          "eval \"$(berth keys create admin \\-\\-root /var/lib/berth)\"\n"
          "export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_DEFAULT_REGION=us\\-east\\-1\n"
          "aws ecr describe\\-repositories \\-\\-endpoint\\-url http://127.0.0.1:5000\n"
          ".fi\n"
          ".SH SEE ALSO\n"
          ".BR systemd.exec (5),\n"
          ".BR skopeo (1),\n"
          ".BR aws (1)\n",
          f);
}
