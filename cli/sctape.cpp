// sctape — command-line front end. `sctape --help` lists the subcommands.
#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "commands.hpp"
#include "fit_commands.hpp"
#include "core/memory.hpp"
#ifdef SCTAPE_HAVE_MPI
#include "core/mpi_communicator.hpp"
#endif

namespace {

const char* kUsage =
    "usage: sctape <command> [options]\n"
    "\n"
    "Measures the memory reverse-mode differentiation needs when a beam is\n"
    "tracked with 3D space charge.\n"
    "\n"
    "commands:\n"
    "  track CONFIG.json [--out RESULT.json] [--dump-particles PREFIX]\n"
    "        track a beam through a lattice with space-charge kicks\n"
    "  fit SWEEP.json [-o COEFFS.json] [--constant]\n"
    "        fit the memory law (alpha_part, alpha_cells per kick) to a sweep\n"
    "  check BASELINE.json COEFFS.json\n"
    "        fail when a fitted tape coefficient rose or the law stopped being linear\n"
    "        (`check --write-baseline COEFFS.json BASELINE.json` makes a baseline)\n"
    "  plan COEFFS.json --n-part N --grid NX NY NZ --kicks K [--memory-GiB M] [--ranks P|auto]\n"
    "        predict the tape of a gradient run per strategy, and whether it fits\n"
    "  merge SHARD.json... -o SWEEP.json\n"
    "        merge the shards of a sweep (sctape-bench --shard i/n) into one sweep\n"
    "\n"
    "Run `sctape <command> --help` for the options of a command.\n"
    "Exit codes: 0 success, 1 regression (check) or nothing fits (plan), 2 bad input\n"
    "(nothing written).\n";

// A closed standard descriptor would be handed to the next file opened, and
// the RESULT printed for standard output would land in an output's temporary.
// Holding it with /dev/null opened read-only keeps it taken, and writes to
// standard output still fail (EBADF), which check_stdout reports.
void hold_standard_descriptors() {
    for (int fd = 0; fd <= 2; ++fd)
        if (::fcntl(fd, F_GETFD) == -1 && ::open("/dev/null", O_RDONLY) != fd) std::_Exit(sctape::cli::kExitBadInput);
}

// Prints `text` to standard output and returns `code`, or 2 when it could not be written.
int print(const char* text, int code) {
    std::cout << text;
    try {
        sctape::cli::check_stdout();
    } catch (const std::exception& e) {
        std::cerr << "sctape: error: " << e.what() << "\n";
        return sctape::cli::kExitBadInput;
    }
    return code;
}

// Open MPI's and MPICH's launchers say how many ranks they started.
[[maybe_unused]] bool launched_on_several_ranks() {
    for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"}) {
        const char* v = std::getenv(name);
        if (v && std::atol(v) > 1) return true;
    }
    return false;
}

}  // namespace

int main(int argc, char** argv) {
    hold_standard_descriptors();
    sctape::keep_freed_host_memory();
    std::vector<std::string> args(argv + 1, argv + argc);
    if (args.empty()) {
        std::cerr << kUsage;
        return sctape::cli::kExitBadInput;
    }
    if (args[0] == "--help" || args[0] == "-h") return print(kUsage, 0);
    if (args[0] == "--version") return print(("sctape " + std::string(SCTAPE_VERSION) + "\n").c_str(), 0);
    const std::string command = args[0];
    args.erase(args.begin());
    if (command == "track") {
#ifdef SCTAPE_HAVE_MPI
        // every rank runs `track` on its share of the particles (docs/mpi.md)
        sctape::MpiSession mpi(argc, argv);
#else
        // without MPI, P copies under mpirun would each track the whole beam
        // and race on the same output files
        if (launched_on_several_ranks()) {
            std::cerr << "sctape: error: started on several MPI ranks, but this sctape was built without MPI "
                         "(build the mpi preset: docs/mpi.md)\n";
            return sctape::cli::kExitBadInput;
        }
#endif
        return sctape::cli::track_command(args);
    }
    if (command == "fit") return sctape::cli::fit_command(args);
    if (command == "check") return sctape::cli::check_command(args);
    if (command == "plan") return sctape::cli::plan_command(args);
    if (command == "merge") return sctape::cli::merge_command(args);
    std::cerr << "sctape: unknown command '" << command << "'\n\n" << kUsage;
    return sctape::cli::kExitBadInput;
}
