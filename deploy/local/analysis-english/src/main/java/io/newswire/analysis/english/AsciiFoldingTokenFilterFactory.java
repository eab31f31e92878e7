/*
 * Copyright the Newswire authors. Licensed under the Apache License, Version 2.0.
 */
package io.newswire.analysis.english;

import org.apache.lucene.analysis.TokenStream;
import org.apache.lucene.analysis.miscellaneous.ASCIIFoldingFilter;
import org.elasticsearch.plugin.Inject;
import org.elasticsearch.plugin.NamedComponent;
import org.elasticsearch.plugin.analysis.TokenFilterFactory;
import org.elasticsearch.plugin.settings.AnalysisSettings;
import org.elasticsearch.plugin.settings.BooleanSetting;

/**
 * Token filter type {@code asciifolding}: Lucene's ASCIIFoldingFilter ("Zürich" to "zurich").
 *
 * <p>Why: production has it in analysis-common; the index component's default analyzer uses
 * it. {@code preserve_original} (default false) also keeps the unfolded token, as in
 * production.
 */
@NamedComponent("asciifolding")
public class AsciiFoldingTokenFilterFactory implements TokenFilterFactory {

    /** The component's settings that this filter reads. */
    @AnalysisSettings
    public interface Settings {
        /** Emit the original token too, at the same position. */
        @BooleanSetting(path = "preserve_original", defaultValue = false)
        boolean preserveOriginal();
    }

    private final boolean preserveOriginal;

    @Inject
    public AsciiFoldingTokenFilterFactory(Settings settings) {
        this.preserveOriginal = settings.preserveOriginal();
    }

    @Override
    public TokenStream create(TokenStream tokenStream) {
        return new ASCIIFoldingFilter(tokenStream, preserveOriginal);
    }

    /** Normalizers (keyword fields) need one token out per token in: never keep the original. */
    @Override
    public TokenStream normalize(TokenStream tokenStream) {
        return new ASCIIFoldingFilter(tokenStream, false);
    }
}
