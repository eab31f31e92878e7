/*
 * Copyright the Newswire authors. Licensed under the Apache License, Version 2.0.
 */
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.Deque;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.stream.Stream;
import org.elasticsearch.plugin.Extensible;
import org.elasticsearch.plugin.NamedComponent;

/**
 * Build step: writes the plugin's named_components.json from its compiled classes.
 *
 * <p>What: for every class under CLASSES_DIR annotated {@code @NamedComponent("x")}, finds the
 * {@code @Extensible} interface it implements (e.g. TokenFilterFactory) and writes
 * {"org.elasticsearch.plugin.analysis.TokenFilterFactory":{"x":"the.Class"}, ...} to OUT.
 * Why: the node only learns a stable plugin's components from that file in the plugin folder.
 * elasticsearch-plugin install writes it when the zip lacks it, but a zip that carries it also
 * works when unpacked into plugins/ by hand, and the build catches a missing or duplicate name.
 * Generated rather than kept by hand, so it cannot drift from the code.
 *
 * <p>Run by exec-maven-plugin as a single-file program (never packaged):
 * {@code java -cp <classes and provided deps> NamedComponentsJson.java CLASSES_DIR OUT}.
 */
public class NamedComponentsJson {

    public static void main(String[] args) throws Exception {
        Path classes = Path.of(args[0]);
        Map<String, Map<String, String>> byExtensible = new TreeMap<>();
        try (Stream<Path> files = Files.walk(classes)) {
            for (Path file : files.filter(p -> p.toString().endsWith(".class")).sorted().toList()) {
                String name = classes.relativize(file).toString().replace('/', '.').replaceAll("\\.class$", "");
                if (name.endsWith("module-info")) {
                    continue;
                }
                Class<?> type = Class.forName(name, false, NamedComponentsJson.class.getClassLoader());
                NamedComponent named = type.getAnnotation(NamedComponent.class);
                if (named == null) {
                    continue;
                }
                String extensible = extensibleOf(type);
                String previous = byExtensible.computeIfAbsent(extensible, k -> new TreeMap<>()).put(named.value(), name);
                if (previous != null) {
                    throw new IllegalStateException("two " + extensible + " named [" + named.value() + "]: " + previous + ", " + name);
                }
            }
        }
        if (byExtensible.isEmpty()) {
            throw new IllegalStateException("no @NamedComponent class under " + classes);
        }
        write(byExtensible, Path.of(args[1]));
    }

    /** The one @Extensible interface among the type's supertypes (breadth first). */
    static String extensibleOf(Class<?> type) {
        Deque<Class<?>> todo = new ArrayDeque<>(List.of(type));
        while (todo.isEmpty() == false) {
            Class<?> c = todo.poll();
            if (c.isInterface() && c.isAnnotationPresent(Extensible.class)) {
                return c.getName();
            }
            todo.addAll(List.of(c.getInterfaces()));
            if (c.getSuperclass() != null) {
                todo.add(c.getSuperclass());
            }
        }
        throw new IllegalStateException(type + " is a @NamedComponent but implements no @Extensible interface");
    }

    /** Small stable JSON writer (sorted keys, one component per line). */
    static void write(Map<String, Map<String, String>> map, Path out) throws IOException {
        StringBuilder json = new StringBuilder("{\n");
        String sep = "";
        for (var ext : map.entrySet()) {
            json.append(sep).append("  ").append(quote(ext.getKey())).append(": {\n");
            String inner = "";
            for (var component : ext.getValue().entrySet()) {
                json.append(inner).append("    ").append(quote(component.getKey())).append(": ").append(quote(component.getValue()));
                inner = ",\n";
            }
            json.append("\n  }");
            sep = ",\n";
        }
        Files.createDirectories(out.toAbsolutePath().getParent());
        Files.writeString(out, json.append("\n}\n"));
    }

    static String quote(String s) {
        return "\"" + s.replace("\\", "\\\\").replace("\"", "\\\"") + "\"";
    }
}
