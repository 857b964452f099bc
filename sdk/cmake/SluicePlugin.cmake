# sluice_add_plugin(<target> SOURCES <files>... [SCHEMA <schema.json>] [LIBRARIES <libs>...]
#                   [NO_INSTALL] [OUTPUT_DIRECTORY <dir>])
#
# Builds a Sluice plugin: a MODULE library against the SDK, compiled with hidden visibility so
# only `sluice_plugin_entry` is exported. SCHEMA embeds the component's JSON Schema as the
# string constant SLUICE_SCHEMA_JSON (include <sluice_schema.h>). The same function builds the
# built-in plugins and third-party ones (via find_package(SluiceSDK)).
#
# The library lands in OUTPUT_DIRECTORY, else ${SLUICE_PLUGIN_OUTPUT_DIR} when set, and installs
# into <prefix>/lib/sluice/plugins unless NO_INSTALL: always `lib`, never a multiarch libdir,
# because `sluice` looks for plugins at <its own dir>/../lib/sluice/plugins.
include_guard(GLOBAL)
include(GNUInstallDirs)

# Cached so the function sees it from any directory scope that calls it.
set(_SLUICE_PLUGIN_TEMPLATE_DIR "${CMAKE_CURRENT_LIST_DIR}" CACHE INTERNAL "sluice_add_plugin templates")

function(sluice_add_plugin target)
    cmake_parse_arguments(PARSE_ARGV 1 ARG "NO_INSTALL" "SCHEMA;OUTPUT_DIRECTORY" "SOURCES;LIBRARIES")
    if(NOT ARG_SOURCES)
        message(FATAL_ERROR "sluice_add_plugin(${target}): SOURCES is required")
    endif()
    add_library(${target} MODULE ${ARG_SOURCES})
    target_link_libraries(${target} PRIVATE Sluice::SDK ${ARG_LIBRARIES})
    set_target_properties(${target} PROPERTIES
        PREFIX ""
        CXX_VISIBILITY_PRESET hidden
        C_VISIBILITY_PRESET hidden
        VISIBILITY_INLINES_HIDDEN ON)
    target_compile_features(${target} PRIVATE cxx_std_17)

    if(ARG_SCHEMA)
        get_filename_component(schema_path "${ARG_SCHEMA}" ABSOLUTE)
        if(NOT EXISTS "${schema_path}")
            message(FATAL_ERROR "sluice_add_plugin(${target}): schema ${schema_path} not found")
        endif()
        file(READ "${schema_path}" SLUICE_SCHEMA_CONTENT)
        set(generated_dir "${CMAKE_CURRENT_BINARY_DIR}/${target}_generated")
        configure_file("${_SLUICE_PLUGIN_TEMPLATE_DIR}/sluice_schema.h.in" "${generated_dir}/sluice_schema.h" @ONLY)
        set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${schema_path}")
        target_include_directories(${target} PRIVATE "${generated_dir}")
    endif()

    set(out_dir "${ARG_OUTPUT_DIRECTORY}")
    if(NOT out_dir AND SLUICE_PLUGIN_OUTPUT_DIR)
        set(out_dir "${SLUICE_PLUGIN_OUTPUT_DIR}")
    endif()
    if(out_dir)
        set_target_properties(${target} PROPERTIES LIBRARY_OUTPUT_DIRECTORY "${out_dir}")
    endif()
    if(NOT ARG_NO_INSTALL)
        install(TARGETS ${target} LIBRARY DESTINATION "lib/sluice/plugins")
    endif()
endfunction()
