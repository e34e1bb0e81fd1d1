# retrain-bench-input: the trainer's input pipeline per core (see
# bench/input_pipeline.sh, which runs it against bench/input_pipeline.py).
# Included from bench/CMakeLists.txt; only where the trainer is built.
if(TARGET retrain_trainer_input)
  add_executable(retrain-bench-input ${CMAKE_CURRENT_LIST_DIR}/input_pipeline.cc)
  target_link_libraries(retrain-bench-input PRIVATE retrain_trainer_input retrain_proto_messages PkgConfig::VIPS)
  retrain_warnings(retrain-bench-input)
endif()
