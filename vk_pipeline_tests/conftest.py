pytest_plugins = [
    "vk_pipeline_tests.fixtures.postgres",
    "vk_pipeline_tests.fixtures.emulator",
    "vk_pipeline_tests.fixtures.processes",
]
